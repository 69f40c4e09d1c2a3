"""SIGTERM (a service manager) and Ctrl-C stop `vigil360 run` cleanly: everything written, "stopped": true."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import write_blank_video

HERE = Path(__file__).parent

_RUN = """
import sys
sys.path.insert(0, {here!r})
from scripted import ScriptedPerception
import vigil360.edge.reflex as reflex
reflex.ReflexPerception = ScriptedPerception
from vigil360 import cli
cli.main(["run", {video!r}, "--out", {out!r}, "--no-speech", "--realtime", "--profile", {profile!r}])
"""


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    # 40 s when paced: the signal always comes long before the end.
    return write_blank_video(tmp_path_factory.mktemp("long") / "long.avi", frames=600)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_writes_everything(long_video, tmp_path, signum):
    out, profile = tmp_path / "run", tmp_path / "profile.json"
    code = _RUN.format(here=str(HERE), video=str(long_video), out=str(out), profile=str(profile))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:  # wait for the first alert: the loop is running
            if "(reflex, risk" in line:  # an alert line, whatever its wording
                break
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert signal.Signals(signum).name in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] is True and 0 < summary["frames"] < 600
    assert json.loads(profile.read_text())["frames"] == summary["frames"]
    assert (out / "predictions.jsonl").read_bytes().endswith(b"\n")
