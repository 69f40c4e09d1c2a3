"""The published-baselines data file: it loads, refuses unknown keys, and prints as published figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil360.bench.baselines import BaselineRow, Baselines, load_baselines
from vigil360.bench.report import write_report
from vigil360.bench.scoring.run import ScoreSettings, Warnings
from vigil360.records import RecordError


def test_shipped_file_loads() -> None:
    shipped = load_baselines()
    assert "arXiv:2601.08155" in shipped.source
    assert all(row.method and row.table for row in shipped.rows)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"source": "s", "note": "n", "rows": [{"table": "2", "method": "m",
                                                                      "dataset": "d", "ciou": 1}]}))
    with pytest.raises(RecordError, match=r"rows\[0\]\.ciou"):
        load_baselines(path)


def test_report_marks_rows_as_published(tmp_path: Path) -> None:
    # A made-up row for the rendering test only; it is not a figure from the paper.
    rows = [BaselineRow(table="T", method="ExampleMethod", dataset="ExampleSet", cap=1.5)]
    write_report(tmp_path, [], ScoreSettings(), Warnings(), baselines=Baselines(source="src", note="n", rows=rows))
    report = (tmp_path / "report.md").read_text()
    section = report.split("## Published baselines (published figures, not re-run here)")[1]
    assert "ExampleMethod" in section.split("##")[0] and "Source: src" in section


def test_shipped_rows_are_the_papers_tables() -> None:
    rows = load_baselines().rows
    assert len(rows) == 48 and {row.table for row in rows} == {"2", "3", "4"}
    # The paper's headline: Qwen3-VL + SAM2 on VIEW360+ (Table 3).
    best = next(r for r in rows if r.method == "Qwen3-VL+SAM2" and r.dataset == "VIEW360+")
    assert (best.cap, best.iou, best.fsc, best.fpe) == (21.97, 26.23, 20.89, 0.59)


def test_published_fsc_is_one_of_our_two_aggregations() -> None:
    # The mean of per-entity harmonic means never exceeds the harmonic mean of the means (the
    # harmonic mean is concave), so every published Fsc must be at or below the harmonic mean of
    # its row's Cap and IoU: a row above it is a transcription error.
    checked = 0
    for row in load_baselines().rows:
        if None in (row.cap, row.iou, row.fsc):
            continue
        of_means = 2 * row.cap * row.iou / (row.cap + row.iou)
        assert row.fsc <= of_means + 0.015, (row.method, row.dataset, row.role)
        checked += 1
    assert checked == 30
