"""`vigil360 bench loop` runs the whole loop and reports what BENCHMARKS.md needs."""

from __future__ import annotations

import json

from vigil360 import cli


def test_loop_benchmark_smoke(tmp_path, capsys):
    report = tmp_path / "loop.json"
    try:
        cli.main(["bench", "loop", "--width", "320", "--duration", "2", "--work", str(tmp_path / "work"),
                  "--json", str(report)])
    except SystemExit as exit_:
        assert not exit_.code
    printed = capsys.readouterr().out
    assert "FPS" in printed and "frame -> sentence" in printed and "memory: RSS" in printed
    data = json.loads(report.read_text())
    assert data["frames"] == 60 and data["fps"] > 0
    assert {"read", "reflex", "decide", "record"} <= set(data["stages"])
    assert data["rss_end_mb"] > 0
