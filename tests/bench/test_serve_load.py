"""`vigil360 bench serve-load`, bounded: a few clients for a couple of seconds on loopback."""

from __future__ import annotations

import json

import pytest

from vigil360.cli import main


def test_serve_load_reports_fps_and_latency_per_phase(tmp_path, capsys) -> None:
    out = tmp_path / "serve-load.json"
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "serve-load", "--clients", "3", "--duration", "2", "--width", "256", "--work",
              str(tmp_path / "work"), "--json", str(out)])
    assert exit_.value.code == 0
    report = json.loads(out.read_text())
    assert [phase["clients"] for phase in report["phases"]] == [0, 1, 3]
    for phase in report["phases"]:
        assert phase["fps"] > 0 and phase["frames"] > 0
    loaded = report["phases"][2]
    assert loaded["latency_ms"]["n"] > 0 and loaded["latency_ms"]["p95"] >= loaded["latency_ms"]["p50"] >= 0
    # Every client got every event the loop published (none was slow enough to lose any).
    published = sum(loaded["events_published"].values())
    assert sum(loaded["events_received"].values()) == 3 * published - sum(loaded["events_dropped"].values())
    assert "| clients | loop FPS |" in capsys.readouterr().out
