"""Stage timers, latency percentiles, frame rate and memory for the loop (and `--profile`).

Windows are bounded (the last few thousand samples) so a ten-minute stream does not grow
memory just by being measured.
"""

from __future__ import annotations

import resource
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vigil360.edge.events import StageLatency


def rss_mb() -> float:
    """Resident memory now, in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


class Samples:
    """A bounded window of float samples with percentiles."""

    def __init__(self, window: int = 4096) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, value: float) -> None:
        self._values.append(value)
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self._values:
            return None
        return float(np.percentile(np.fromiter(self._values, float), q))

    def summary(self) -> StageLatency | None:
        if not self._values:
            return None
        values = np.fromiter(self._values, float)
        p50, p95 = np.percentile(values, [50, 95])
        return StageLatency(p50_ms=round(float(p50), 3), p95_ms=round(float(p95), 3), count=self.count)


class StageTimer:
    """Per-stage wall-clock latency in milliseconds; safe to use from worker threads too."""

    def __init__(self, window: int = 4096) -> None:
        self._window = window
        self._stages: dict[str, Samples] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, milliseconds: float) -> None:
        with self._lock:
            samples = self._stages.get(stage)
            if samples is None:
                samples = self._stages[stage] = Samples(self._window)
            samples.add(milliseconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1000.0)

    def summary(self) -> dict[str, StageLatency]:
        with self._lock:
            items = list(self._stages.items())
        return {name: s for name, samples in items if (s := samples.summary()) is not None}


class RateMeter:
    """Events per second over a sliding time window (the loop's FPS, a model stage's rate)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        self.total += 1
        while self._times and now - self._times[0] > self._window_s:
            self._times.popleft()

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return 0.0 if span <= 0 else (len(self._times) - 1) / span


class ModelStageReport(BaseModel):
    """One optional model stage over a run: what it was asked, what it did, how fast it ran."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field(description="'background' (latest job wins, the loop never waits) or 'synchronous'")
    started: int = Field(0, description="runs that began")
    finished: int = Field(0, description="runs that returned a result")
    failed: int = Field(0, description="runs that raised (the error is reported, the loop goes on)")
    abandoned: int = Field(0, description="runs stopped in flight when the loop ended (not a failure)")
    dropped: int = Field(0, description="jobs still waiting when the loop ended, never started")
    skipped: int = Field(0, description="jobs replaced by a newer one before they started")
    latency_ms: StageLatency | None = Field(None, description="finished runs' latency")
    busy_s: float = Field(0.0, description="the stage's own wall time: its finished and failed runs' durations")
    rate_hz: float = Field(0.0, description="finished runs per second of the stage's own wall time")
    errors: list[str] = Field(default_factory=list, description="the last few failures")
    still_running: bool = Field(False, description="a run outlived the bounded join (a call that cannot be stopped)")


class ProfileReport(BaseModel):
    """What `--profile out.json` writes and `vigil360 bench loop` prints."""

    model_config = ConfigDict(extra="forbid")

    source: str
    frames: int
    dropped_frames: int
    wall_s: float
    fps: float = Field(description="frames processed per wall-clock second, end to end")
    stages: dict[str, StageLatency] = Field(description="per-stage latency, ms")
    frame_to_sentence_ms: StageLatency | None = Field(
        None, description="from the frame being read to its alert sentence being ready (p50/p95)",
    )
    frame_to_speech_ms: StageLatency | None = Field(
        None, description="from the frame being read to its audio being synthesised (off the hot path)",
    )
    finish_s: float = Field(0.0, description="from the loop's last frame to every stage and output closed")
    mode: str = Field("realtime", description="'realtime' (models in the background) or 'offline' (every frame "
                                               "waits for its scheduled model results: independent of speed)")
    model_stages: dict[str, ModelStageReport] = Field(default_factory=dict, description="optional model stages")
    alerts: int = 0
    spoken: int = 0
    dropped_alerts: int = 0
    rss_start_mb: float
    rss_end_mb: float
    peak_rss_mb: float


def model_stage_lines(stages: dict[str, ModelStageReport]) -> list[str]:
    """One line per model stage for a run summary: runs, latency, rate over the stage's own time,
    and what the end of the run abandoned."""
    lines = []
    for name, stage in stages.items():
        latency = stage.latency_ms
        timing = "no finished run" if latency is None else (
            f"p50 {latency.p50_ms:.0f} ms, p95 {latency.p95_ms:.0f} ms; "
            f"{stage.rate_hz:.3g} runs/s over its own {stage.busy_s:.1f} s")
        lines.append(f"model stage {name} ({stage.mode}): {stage.started} started, {stage.finished} finished, "
                     f"{stage.failed} failed, {stage.abandoned} abandoned in flight, {stage.dropped} dropped "
                     f"waiting, {stage.skipped} skipped (superseded); {timing}")
        if stage.still_running:
            lines.append(f"model stage {name}: a call that cannot be stopped is still running; exit waits for it")
        lines.extend(f"model stage {name} error: {error}" for error in stage.errors)
    return lines
