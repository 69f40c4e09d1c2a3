"""Shared latency helpers and the SAM2 latency report's table."""

from __future__ import annotations

import time

import pytest

from vigil360.bench.latency import current_rss_mb, peak_rss_mb, time_it
from vigil360.bench.latency_sam2 import STAGES, markdown


def test_time_it_measures_after_warmup() -> None:
    calls = []

    def nap() -> None:
        calls.append(1)
        time.sleep(0.01)

    timing = time_it(nap, warmup=2, repeats=5)
    assert len(calls) == 7 and timing.repeats == 5
    assert 9.0 <= timing.min_ms <= timing.median_ms <= timing.p95_ms <= timing.max_ms


def test_time_it_refuses_no_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        time_it(lambda: None, repeats=0)


def test_rss_figures_are_plausible() -> None:
    rss = current_rss_mb()
    assert rss > 1.0 and rss <= peak_rss_mb() + 1.0


def test_markdown_lists_every_stage_and_the_ratio() -> None:
    stage = {"median_ms": 10.0, "p95_ms": 12.0}
    report = {
        "model": "sam2.1_hiera_tiny",
        "weights": "random-init, seed 0",
        "machine": {"processor": "x86_64", "threads": 2},
        "memories": 7,
        "pointers": 16,
        "repeats": 3,
        "warmup": 1,
        "runs": [
            {
                "image_size": 512,
                "objects": 1,
                "peak_rss_mb": 900.0,
                "speedup_vs_torch": {"ort": 2.5},
                "backends": {
                    "torch": {s: stage for s in (*STAGES, "step")},
                    "ort": {s: stage for s in (*STAGES, "step")},
                },
            }
        ],
        "stream": {
            "frames": 3000,
            "image_size": 64,
            "objects": 1,
            "rss_growth_after_warmup_mb": 0.5,
            "bank_bytes_final": 40000,
            "peak_rss_mb": 600.0,
        },
    }
    table = markdown(report)
    assert "| 512 | 1 | ort | 10.0 / 12.0 |" in table and "2.50x" in table
    assert "3000 frames" in table and "random-init" in table
