import json
from pathlib import Path

import pytest

from vigil360.bench.reflex_bench import FrameTrack, clock_error, match_frame
from vigil360.cli import main
from vigil360.schema import AngleBox


@pytest.mark.parametrize(
    ("a", "b", "error"), [(0, 0, 0), (0, 31, 1), (-170, 170, 0), (-160, 140, 2), (90, -90, 6), (175, -150, 1)]
)
def test_clock_error_wraps(a: float, b: float, error: int) -> None:
    assert clock_error(a, b) == error


def test_tracks_match_actors_by_box_overlap_across_the_seam() -> None:
    tracks = [FrameTrack(1, 179.0, 0.0, 10.0, 20.0, True, ""), FrameTrack(2, 40.0, 0.0, 5.0, 10.0, False, "")]
    actors = {"thief": AngleBox(yaw=-178.0, pitch=0.0, width=10.0, height=20.0),
              "passer": AngleBox(yaw=-60.0, pitch=0.0, width=5.0, height=10.0)}
    assert match_frame(tracks, actors) == {1: "thief"}


def test_bench_reflex_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reflex.json"
    with pytest.raises(SystemExit) as finished:
        main(["bench", "reflex", "--scenarios", "1", "--width", "256", "--duration", "2", "--speed-seconds", "1",
              "--out", str(out)])
    assert finished.value.code == 0
    printed = capsys.readouterr().out
    for words in ("median ms per stage", "FPS", "alert recall", "bystander flag rate", "direction",
                  "mask IoU", "seam id stability"):
        assert words in printed
    summary = json.loads(out.read_text())["summary"]
    assert summary["scenarios"] == 1 and summary["fps"] > 0
    assert set(summary["stage_ms"]) >= {"downscale", "ego", "motion", "track", "risk", "appearance"}
