"""Recording faults: a full disk ends the recording, never the alerts, and is reported by name."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

from vigil360.config import Settings
from vigil360.edge.events import AlertEvent, HealthEvent
from vigil360.edge.loop import EdgeLoop
from vigil360.edge.recorder import PredictionRecorder
from vigil360.records import iter_records
from vigil360.schema import Video

HERE = Path(__file__).parent
# Big enough for summary.json and the profile, small enough that predictions.jsonl hits it mid-run
# (about frame 17 of 60; the scripted perception alerts every 10 frames).
FILE_SIZE_LIMIT = 4000

_RUN_UNDER_LIMIT = """
import resource, sys
sys.path.insert(0, {here!r})
from scripted import ScriptedPerception
import vigil360.edge.reflex as reflex
reflex.ReflexPerception = ScriptedPerception
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from vigil360 import cli
cli.main(["run", {video!r}, "--out", {out!r}, "--no-speech", "--profile", {profile!r}])
"""


def test_file_size_limit_mid_run_keeps_alerting_and_writes_everything_else(blank_video, tmp_path):
    out, profile = tmp_path / "run", tmp_path / "profile.json"
    code = _RUN_UNDER_LIMIT.format(here=str(HERE), limit=FILE_SIZE_LIMIT, video=str(blank_video), out=str(out),
                                   profile=str(profile))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, "incomplete predictions: not a complete run"
    predictions = out / "predictions.jsonl"
    assert "File too large" in done.stderr and str(predictions) in done.stderr, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(profile.read_text())["frames"] == 60
    assert summary["frames"] == 60 and summary["alerts"] == 6, "every scripted alert was still made"
    (fault,) = [f for f in summary["faults"] if f["component"] == "recording"]
    assert str(predictions) in fault["message"] and fault["count"] > 0
    data = predictions.read_bytes()
    assert 0 < len(data) <= FILE_SIZE_LIMIT and data.endswith(b"\n"), "no torn last line"
    (record,) = iter_records(predictions)
    assert 1 <= len(record.entities) < 6, "the file holds the entities recorded before the disk filled"
    printed_alerts = [line for line in done.stdout.splitlines() if "(reflex, risk" in line]
    assert len(printed_alerts) == 6


class _FailingHandle:
    """A file handle that accepts `budget` bytes, writes part of the next line, then fails (ENOSPC)."""

    def __init__(self, handle, budget: int) -> None:
        self._handle, self.budget = handle, budget

    def write(self, data) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self._handle.write(bytes(data[: self.budget]))
        self.budget -= n
        return n

    def __getattr__(self, name):
        return getattr(self._handle, name)


def test_disk_full_is_counted_reported_and_the_loop_goes_on(tmp_path, blank_source, scripted_perception):
    source = blank_source(60)
    recorder = PredictionRecorder(tmp_path / "p.jsonl", Video(video_id="blank", fps=source.fps, width=source.width,
                                                                height=source.height, num_frames=60))
    writer = recorder._writer._writer
    writer._handle = _FailingHandle(writer._handle, budget=1500)
    loop = EdgeLoop(source, Settings(), recorder=recorder, perception=scripted_perception())
    events: list = []
    loop.add_sink(events.append)
    summary = loop.run()
    assert len([e for e in events if isinstance(e, AlertEvent)]) == summary.alerts == 6
    (fault,) = [f for f in summary.faults if f.component == "recording"]
    assert "No space left on device" in fault.message and "p.jsonl" in fault.message
    assert fault.count == recorder.lines_lost > 0
    (event,) = [e for e in events if isinstance(e, HealthEvent) and e.component == "recording"]
    assert event.state == "failed" and event.frame_index < 20, "reported when it happened, not at the end"
    assert (tmp_path / "p.jsonl").read_bytes().endswith(b"\n")
    assert loop.status().faults[0].component == "recording"
