"""`vigil360 run`: the README's main command (default scenario), real files, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vigil360 import cli, demo
from vigil360.edge.speech import read_wav
from vigil360.records import iter_records


def _vigil360(*args: str) -> int:
    """Run the CLI as a user would; its exit status."""
    try:
        cli.main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_run_with_no_argument_runs_the_default_scenario(tmp_path, monkeypatch, capsys):
    # The real default is 960x480 for 10 s; the same path on a small, short clip keeps CI fast.
    monkeypatch.setattr(
        demo, "DEMO_SPEC", {**demo.DEMO_SPEC, "width": 480, "height": 240, "fps": 15.0, "duration_s": 6.0}
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert _vigil360("run", "--out", str(out), "--profile", str(tmp_path / "profile.json")) == 0
    printed = capsys.readouterr().out
    assert "running the default scenario" in printed
    assert "o'clock" in printed, "alerts are printed as they happen"
    assert "predictions:" in printed and "memory:" in printed
    (record,) = iter_records(out / "predictions.jsonl")
    assert record.kind == "prediction" and record.entities
    wavs = sorted((out / "speech").glob("*.wav"))
    assert wavs, "alerts are spoken to WAV files"
    samples, _ = read_wav(wavs[0])
    assert float(np.sqrt(np.mean(samples.astype(float) ** 2))) > 100.0
    assert (tmp_path / "profile.json").is_file() and (out / "summary.json").is_file()
    assert list((tmp_path / "cache" / "vigil360" / "demo").glob("*.mp4")), (
        "the scenario is cached for next time"
    )


def test_run_on_a_file_without_speech(synthetic_clip_files, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        _vigil360(
            "run",
            str(synthetic_clip_files.video),
            "--out",
            str(out),
            "--no-speech",
            "--max-frames",
            "30",
            "--video-out",
            str(tmp_path / "review.mp4"),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "speech: off" in printed and "frames: 30" in printed
    assert not (out / "speech").exists()
    (record,) = iter_records(out / "predictions.jsonl")
    assert record.video.video_id == synthetic_clip_files.video.stem
    review = cv2.VideoCapture(str(tmp_path / "review.mp4"))
    assert int(review.get(cv2.CAP_PROP_FRAME_COUNT)) == 30


def test_non_equirect_input_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "phone.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (320, 240))
    for _ in range(3):
        writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    assert _vigil360("run", str(path), "--no-speech", "--out", str(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "320x240, not equirectangular 2:1" in err and "--crop" in err
    assert len(err.strip().splitlines()) == 1
    assert _vigil360("run", str(path), "--no-speech", "--crop", "--out", str(tmp_path / "out")) == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--sam2", "no/such/folder", "--sam2 no/such/folder: no such model folder"),
        ("--vlm", "no/such/model", "no such model folder"),
    ],
)
def test_missing_model_is_an_error_never_a_silent_fallback(
    synthetic_clip_files, tmp_path, capsys, flag, value, message
):
    assert (
        _vigil360("run", str(synthetic_clip_files.video), flag, value, "--no-speech", "--out", str(tmp_path))
        == 1
    )
    assert message in capsys.readouterr().err


def test_terminal_keys_repeat_mute_and_stop(monkeypatch, capsys):
    import io
    import threading

    from vigil360.config import Settings
    from vigil360.edge import run_cli

    class Loop:
        settings = Settings()
        repeats = 0

        def repeat_last(self):
            self.repeats += 1
            return None

        def update_settings(self, patch):
            self.settings = Settings.model_validate({**self.settings.model_dump(), **patch})
            return self.settings

    loop, stop = Loop(), threading.Event()
    monkeypatch.setattr("sys.stdin", io.StringIO("r\nm\nq\nr\n"))
    run_cli._keyboard(loop, stop)
    assert loop.repeats == 1 and loop.settings.speech.muted and stop.is_set()
    printed = capsys.readouterr().out
    assert "nothing to repeat yet" in printed and "speech muted" in printed
