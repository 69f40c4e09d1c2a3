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


def _timings(median: float) -> dict:
    stage = {"median_ms": median, "p95_ms": median + 2, "min_ms": median - 1, "max_ms": median + 3}
    return {s: stage for s in (*STAGES, "step")}


def test_markdown_labels_banks_compares_like_with_like_and_lists_memory() -> None:
    ratio = {"median": 1.13, "min": 1.05, "max": 1.2}
    report = {
        "model": "sam2.1_hiera_tiny",
        "weights": "random-init, seed 0",
        "machine": {"processor": "x86_64", "threads": 2, "load_average": [1.0, 1.0, 1.0]},
        "memories": 7,
        "pointers": 16,
        "repeats": 3,
        "warmup": 1,
        "runs": [
            {
                "image_size": 512,
                "objects": 1,
                "banks": {"full": [7, 16], "lean": [3, 4]},
                "speedup_vs_torch_same_bank": {"ort": {"median": 2.5, "min": 2.0, "max": 3.0}, "ort-lean": ratio},
                "lean_vs_full_same_backend": {"torch-lean": ratio, "ort-lean": ratio},
                "backends": {"torch": _timings(10.0), "ort": _timings(4.0), "torch-lean": _timings(8.0),
                             "ort-lean": _timings(7.0)},
                "memory": {"torch": {"peak_rss_mb": 900.0, "backend_mb": 300.0},
                           "ort": {"peak_rss_mb": 500.0, "backend_mb": 250.0}},
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
    assert "| 512 | 1 | full (7 mem, 16 ptr) | ort | 4.0 (3.0–7.0) |" in table and "2.50× (2.00–3.00)" in table
    assert "| 512 | 1 | lean (3 mem, 4 ptr) | torch-lean |" in table and "ALGORITHMIC change" in table
    assert "| 512 | 1 | torch | 900 | 300 |" in table and "| 512 | 1 | ort | 500 | 250 |" in table
    assert "3000 frames" in table and "random-init" in table and "interleaved" in table


def test_interleaved_timings_alternate_backends_every_round() -> None:
    from vigil360.bench.latency_sam2 import interleaved_timings, round_ratios

    order = []
    variants = {name: (lambda stage, name=name: order.append((name, stage))) for name in ("torch", "ort")}
    timings = interleaved_timings(variants, warmup=1, repeats=2)
    per_round = [("torch", s) for s in STAGES] + [("ort", s) for s in STAGES]
    assert order == per_round * 3  # one full step of each backend per round, in turn
    assert len(timings["ort"]["step"]["samples"]) == 2
    ratio = round_ratios(timings["torch"], timings["ort"])
    assert ratio["min"] <= ratio["median"] <= ratio["max"]


@pytest.mark.slow
def test_sam2_latency_run_times_lean_for_torch_too_and_memory_per_process(tmp_path) -> None:
    from vigil360.bench.latency_sam2 import run_latency

    report = run_latency("sam2.1_hiera_tiny", [64], [1], memories=2, pointers=2, warmup=0, repeats=1, threads=1,
                         providers="cpu", export_root=tmp_path, quantize=False, lean=(1, 1))
    row = report["runs"][0]
    assert set(row["backends"]) == {"torch", "ort", "torch-lean", "ort-lean"}
    assert set(row["speedup_vs_torch_same_bank"]) == {"ort", "ort-lean"}
    assert set(row["lean_vs_full_same_backend"]) == {"torch-lean", "ort-lean"}
    memory = row["memory"]
    assert set(memory) == {"torch", "ort"}
    for figures in memory.values():
        assert 0 < figures["backend_mb"] < figures["peak_rss_mb"]
    # Separate processes: the onnxruntime one never imported torch, so it starts far smaller.
    assert memory["ort"]["rss_after_imports_mb"] + 100 < memory["torch"]["rss_after_imports_mb"]
