"""The loop's outputs for reviewers and clients: events to sinks, masks to the record.

Sinks (the server's hub, tests) are called on the loop thread; a broken one must not stop the
wearer's alerts, so its errors are kept for the report instead of propagating.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vigil360 import masks
from vigil360.config import LoopConfig
from vigil360.edge.entities import EntityRegistry
from vigil360.edge.events import StatsEvent, TrackEvent
from vigil360.edge.profiling import RateMeter, StageTimer
from vigil360.edge.recorder import PredictionRecorder
from vigil360.edge.source import Frame


class Sinks:
    def __init__(self) -> None:
        self._sinks: list[Callable[[Any], None]] = []
        self.errors: list[str] = []

    def add(self, sink: Callable[[Any], None]) -> None:
        self._sinks.append(sink)

    def __bool__(self) -> bool:
        return bool(self._sinks)

    def emit(self, event: Any) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception as error:  # noqa: BLE001 - a broken client must not stop the wearer's alerts
                if len(self.errors) < 20:
                    self.errors.append(f"{type(error).__name__}: {error}")


def record_reflex_masks(recorder: PredictionRecorder | None, tracks: list, frame: Frame, registry: EntityRegistry,
                        mask_every: int, width: int, height: int) -> None:
    """Record the reflex masks of announced entities (every `mask_every` frames)."""
    if recorder is None or frame.index % mask_every:
        return
    for track in tracks:
        entity = registry.for_track(track.track_id)
        if entity.announced_frame is None or track.mask is None:
            continue
        # With SAM2 on, its masks (written when they land) refine these frames' reflex masks.
        rle = masks.upsampled(track.mask, width, height)
        recorder.mask(entity.entity_id, frame.index, rle=rle, box=track.box)


class SideEvents:
    """Track events (every `track_event_every` frames) and periodic stats events."""

    def __init__(self, sinks: Sinks, width: int, height: int, *, track_masks: bool = False) -> None:
        self._sinks = sinks
        self._width, self._height = width, height
        self.track_masks = track_masks  # TrackEvents carry masks only when a client asked
        self._last_stats = 0.0

    def emit(self, tracks: list, frame: Frame, registry: EntityRegistry, loop: LoopConfig, *, fps: RateMeter,
             frames: int, dropped_frames: int, timer: StageTimer) -> None:
        if self._sinks and frame.index % loop.track_event_every == 0:
            for track in tracks:
                mask = None
                if self.track_masks and track.mask is not None:
                    mask = masks.upsampled(track.mask, self._width, self._height)
                self._sinks.emit(TrackEvent(
                    frame_index=frame.index, frame_time_s=frame.time_s, entity_id=registry.id_for_track(track.track_id),
                    box=track.box, risk=float(np.clip(track.risk, 0, 1)), flagged=track.flagged, mask=mask,
                    distance_m=track.distance.metres if np.isfinite(track.distance.metres) else None,
                ))
        now = time.perf_counter()
        if now - self._last_stats >= loop.stats_period_s:
            self._last_stats = now
            self._sinks.emit(StatsEvent(frame_index=frame.index, frame_time_s=frame.time_s, fps=round(fps.rate(), 2),
                                        frames=frames, dropped_frames=dropped_frames, stages=timer.summary()))
