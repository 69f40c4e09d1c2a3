"""Model-stage faults: a refused VLM server is not 'a model running at 0.55 runs/s'."""

from __future__ import annotations

import json
import socket

from vigil360 import cli
from vigil360.edge.faults import StageOutcome, stage_outcome


def _refused_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_refused_vlm_server_is_reported_per_stage_and_ends_non_zero(blank_video, tmp_path, monkeypatch, capsys,
                                                                      scripted_perception):
    import vigil360.edge.reflex as reflex

    monkeypatch.setattr(reflex, "ReflexPerception", scripted_perception)
    no_retry = {"http": {"max_retries": 0, "connect_timeout_s": 2.0}}
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"vlm": {"grounder": no_retry, "captioner": no_retry}}))
    out = tmp_path / "run"
    try:
        cli.main(["run", str(blank_video), "--out", str(out), "--no-speech", "--settings", str(settings),
                  "--vlm", _refused_url()])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    printed = capsys.readouterr()
    assert code == 1, "a requested stage that never worked is not a successful run"
    assert "vlm_grounder never succeeded" in printed.err and "Connection refused" in printed.err
    summary = json.loads((out / "summary.json").read_text())
    grounder = StageOutcome.model_validate(summary["model_stages"]["vlm_grounder"])
    assert grounder.succeeded == 0 and grounder.failed >= 1
    assert summary["profile"]["model_rates_hz"]["vlm_grounder"] == 0.0, "failed calls are not runs"
    assert summary["alerts"] == 6, "the reflex tier kept alerting"
    assert any(f["component"] == "model vlm_grounder" and f["severity"] == "failed" for f in summary["faults"])
    assert "model stages: vlm_grounder 0 ok" in printed.out


def test_stage_outcome_counts_only_returned_calls():
    class Worker:  # the worker's own counters, where it keeps them
        errors = ["ConnectError: refused"]
        counts = {"started": 5, "finished": 3, "failed": 1, "abandoned": 1}

    outcome = stage_outcome(Worker())
    assert (outcome.succeeded, outcome.failed, outcome.never_succeeded) == (3, 1, False)
