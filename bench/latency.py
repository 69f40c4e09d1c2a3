"""Shared latency helpers and the `vigil360 bench latency ...` command group.

`time_it` and `peak_rss_mb` are what every latency benchmark uses, so figures from different
models are measured the same way. Each model family adds its own sub-command to `latency_app`
(`vigil360 bench latency sam2` lives in `latency_sam2.py`); register a new one by importing its
module in `_LATENCY_MODULES`.
"""

from __future__ import annotations

import importlib
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import typer

from vigil360.bench.cli import bench_app

latency_app = typer.Typer(
    help="Per-stage latency of the exported models (torch eager vs onnxruntime).", no_args_is_help=True
)

# Modules whose import adds a `@latency_app.command(...)` (one per model family).
_LATENCY_MODULES: list[str] = ["vigil360.bench.latency_sam2", "vigil360.bench.latency_vlm"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock figures of one callable, in milliseconds, over `repeats` runs after warm-up."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    warmup: int

    def as_dict(self) -> dict:
        return asdict(self)


def time_it(fn: Callable[[], object], warmup: int = 2, repeats: int = 10) -> Timing:
    """Run `fn` `warmup` times untimed, then `repeats` times timed with a monotonic clock."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        fn()
    samples = np.empty(repeats, dtype=np.float64)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - start) * 1000.0
    return Timing(
        median_ms=float(np.median(samples)),
        p95_ms=float(np.percentile(samples, 95)),
        mean_ms=float(samples.mean()),
        min_ms=float(samples.min()),
        max_ms=float(samples.max()),
        repeats=repeats,
        warmup=warmup,
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def own_peak_rss_mb() -> float:
    """Peak RSS of this process's own address space (Linux VmHWM, reset at exec), in MiB.

    `ru_maxrss` survives fork + exec, so a freshly spawned worker reports its parent's peak; VmHWM
    does not. Elsewhere falls back to `peak_rss_mb`.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def machine_name() -> str:
    """CPU model, logical cores and OS, for labelling figures (the CPU model from /proc/cpuinfo on Linux)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def current_rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * resource.getpagesize() / (1024.0 * 1024.0)


def _register_latency_commands() -> None:
    for name in _LATENCY_MODULES:
        importlib.import_module(name)


bench_app.add_typer(latency_app, name="latency")
_register_latency_commands()
