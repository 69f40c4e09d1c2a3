"""`bench run` on a local Ray cluster against the local engine: the same predictions byte for byte
(offline mode), the same scores, models loaded once per worker, and a killed job that resumes with
only the videos it had not finished.

One Ray instance (2 CPUs, no dashboard, no network) serves the whole module: Ray start-up is slow
on a 2-core machine. SAM2 is a random-weights export at 128 px (shared with the export tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from vigil360.cli import main as cli_main

ray = pytest.importorskip("ray", reason="the Ray engine needs the cluster extra: pip install 'vigil360[cluster]'")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vigil360.export.sam2_cached import ensure_export

    out = tmp_path_factory.getbasetemp() / "sam2_tiny_128"  # shared with the export and tracker tests
    ensure_export(out, image_size=128, seed=0)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generator clips, 5 s each so the reflex tier settles and alerts (which seeds SAM2)."""
    from vigil360.bench.synthetic.suite import suite_specs, write_clip

    out = tmp_path_factory.mktemp("clips")
    for spec in suite_specs(6, 3, kinds=["stealing", "collide", "throw"], width=480, height=240, fps=15.0,
                            duration_s=5.0):
        write_clip(spec, out)
    return out


def _bench_run(clips: Path, sam2_dir: Path, out: Path, *extra: str) -> None:
    try:
        cli_main(["bench", "run", "--data", str(clips), "--out", str(out), "--sam2", str(sam2_dir),
                  "--threads", "1", "--no-embed", *extra])
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"bench run exited with {exit_.code}"


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]


def _sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


@pytest.fixture(scope="module")
def local_run(clips, sam2_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    _bench_run(clips, sam2_dir, out, "--engine", "local")
    return out


def test_ray_engine_gives_the_local_engine_predictions_and_scores(cluster, clips, sam2_dir, local_run, tmp_path):
    out = tmp_path / "ray"
    _bench_run(clips, sam2_dir, out, "--engine", "ray", "--workers", "2")
    local_files = sorted(p.name for p in (local_run / "predictions").glob("*.jsonl"))
    assert local_files == sorted(p.name for p in (out / "predictions").glob("*.jsonl")) and len(local_files) == 6
    assert not list((out / "predictions").glob(".*")), "no partial files left behind"
    for name in local_files:
        assert _sorted_lines(out / "predictions" / name) == _sorted_lines(local_run / "predictions" / name), name
    local_scores = json.loads((local_run / "score" / "results.json").read_text())["overall"]
    ray_scores = json.loads((out / "score" / "results.json").read_text())["overall"]
    assert ray_scores == local_scores
    log = _log(out)
    assert sum(entry["model_runs"].get("sam2", 0) for entry in log) > 0, "SAM2 tracked: model output is compared"
    assert {entry["mode"] for entry in log} == {"offline"} and {entry["engine"] for entry in log} == {"ray"}
    by_worker: dict[str, list[int]] = defaultdict(list)
    for entry in log:
        by_worker[entry["worker"]].append(entry["model_loads"])
    assert len(by_worker) == 2, "two actors shared the videos"
    assert all(loads == [1] * len(loads) for loads in by_worker.values()), "models load once per worker"
    assert max(len(loads) for loads in by_worker.values()) >= 2, "a worker reused its models for several videos"


def test_a_killed_ray_job_resumes_with_only_the_unfinished_videos(cluster, clips, sam2_dir, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "vigil360", "bench", "run", "--data", str(clips), "--out", str(out),
               "--sam2", str(sam2_dir), "--threads", "1", "--no-score", "--engine", "ray", "--workers", "2",
               "--address", cluster]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finished = 0
    assert driver.stdout is not None
    for line in driver.stdout:  # blocks until the driver reports a video: no sleeping, no polling
        finished += line.startswith("video ")
        if finished == 3:
            driver.send_signal(signal.SIGKILL)
            break
    driver.wait(timeout=120)
    assert finished == 3, "the driver reported three finished videos before it was killed"
    all_videos = {p.stem for p in clips.glob("*.mp4")}
    done_before = {p.stem for p in (out / "predictions").glob("*.jsonl")}
    assert 3 <= len(done_before) < len(all_videos)

    _bench_run(clips, sam2_dir, out, "--engine", "ray", "--workers", "2", "--no-score")
    log = _log(out)
    rerun_job = log[-1]["job"]
    rerun = [entry["video_id"] for entry in log if entry["job"] == rerun_job]
    assert sorted(rerun) == sorted(all_videos - done_before), "the rerun redid exactly the unfinished videos"
    assert {p.stem for p in (out / "predictions").glob("*.jsonl")} == all_videos
    assert not list((out / "predictions").glob(".*")), "partial files of the killed attempts are gone"


def test_run_speed_reports_videos_per_minute_per_worker_count(cluster, clips, capsys):
    """The benchmark behind BENCHMARKS.md, cut short (20 frames per video: no model runs)."""
    try:
        cli_main(["bench", "run-speed", "--data", str(clips), "--workers", "1", "--no-local", "--max-frames", "20"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    printed = capsys.readouterr().out
    assert "offline mode" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith("| ray |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:3] == ["1", "6"] and float(cells[4]) > 0 and cells[6] == "[1]"
