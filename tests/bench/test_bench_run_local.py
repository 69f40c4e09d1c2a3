"""`bench run` with the local engine: a damaged video is reported and retried on the rerun while
the others are kept; refused option combinations are one clear error."""

from __future__ import annotations

import json
import shutil

import pytest

from vigil360.cli import main as cli_main


def _run(*args: str) -> int:
    try:
        cli_main(["bench", "run", "--no-score", *args])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_a_damaged_video_fails_alone_and_is_retried_on_the_rerun(synthetic_clip_files, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    good = shutil.copy(synthetic_clip_files.video, data / "good.mp4")
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # a header and nothing else
    out = tmp_path / "out"
    assert _run("--data", str(data), "--out", str(out)) == 1
    log = {entry["video_id"]: entry for entry in map(json.loads, (out / "run_log.jsonl").read_text().splitlines())}
    assert log["broken"]["error"] and log["good"]["error"] is None and log["good"]["frames"] > 0
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["good.jsonl"]
    assert "broken" in capsys.readouterr().err

    shutil.copy(good, data / "broken.mp4")  # repaired
    assert _run("--data", str(data), "--out", str(out)) == 0
    entries = [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]
    assert [e["video_id"] for e in entries if e["job"] == entries[-1]["job"]] == ["broken"], "only the failed one"
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["broken.jsonl", "good.jsonl"]


@pytest.mark.parametrize("args, message", [
    (["--engine", "local", "--workers", "2"], "needs --engine ray"),
    (["--engine", "spark"], "--engine 'spark'"),
])
def test_refused_engine_options(synthetic_clip_files, tmp_path, capsys, args, message):
    assert _run("--data", str(synthetic_clip_files.video.parent), "--out", str(tmp_path / "o"), *args) != 0
    assert message in capsys.readouterr().err
