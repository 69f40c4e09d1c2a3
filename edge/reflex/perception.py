"""The reflex tier: weight-free perception that runs on every frame (issue 4).

frame -> downscale -> ego-rotation -> motion regions -> tracks -> distance, risk, appearance.
The "whom" of every reflex track is the wearer; the mover is the perpetrator.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil360 import masks
from vigil360.config import Settings
from vigil360.edge.geometry import Distance, check_equirect_shape, ground_distance
from vigil360.edge.reflex.appearance import Appearance, measure_appearance
from vigil360.edge.reflex.ego import EgoRotation
from vigil360.edge.reflex.motion import MotionProposer
from vigil360.edge.reflex.risk import RiskAssessment, assess
from vigil360.edge.reflex.tracker import AngleTracker, Track
from vigil360.schema import RLE, AngleBox

STAGES: tuple[str, ...] = ("downscale", "ego", "motion", "track", "risk", "appearance")


@dataclass
class ReflexTrack:
    """One live track as the loop sees it. Angles in degrees, distances in metres.

    `reason` is the rule behind `risk`: "approaching fast", "close behind you", "crossing in
    front", "passing close at speed", or "" when no rule applies. `tau_s` is the looming time to
    contact (None unless the entity is clearly growing). The mover is the perpetrator; the one
    affected (`whom`) is always the wearer in this tier.
    """

    track_id: int
    box: AngleBox
    mask: np.ndarray | None  # bool at the tier's working resolution; None while coasting
    distance: Distance
    risk: float
    reason: str
    flagged: bool
    tau_s: float | None
    appearance: Appearance
    first_seen_s: float
    age_frames: int
    missed_frames: int = 0
    closing_mps: float | None = None
    # (time, RLE) of the last `mask_history_frames` masks, at the working resolution (cheap to keep).
    mask_history: list[tuple[float, RLE]] = field(default_factory=list)
    role: str = "perpetrator"
    whom: str = "you"

    def mask_rle(self, width: int, height: int) -> RLE:
        """The mask upsampled to a full (width x height) frame, COCO RLE; empty while coasting."""
        if self.mask is None:
            return masks.empty(height, width)
        full = cv2.resize(self.mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        return masks.encode(full)


@dataclass
class _TrackMemory:
    """What the tier remembers per track beyond the tracker's geometry."""

    appearance: Appearance | None = None
    flagged: bool = False
    above_threshold: int = 0  # consecutive frames with risk at or above the threshold
    mask_history: deque = field(default_factory=deque)


class ReflexPerception:
    def __init__(self, width: int, height: int, settings: Settings | None = None) -> None:
        check_equirect_shape(width, height)
        self.settings = settings or Settings()
        self.config = self.settings.reflex
        self.width, self.height = width, height
        self.work_width = min(self.config.work_width, width)
        self.work_height = self.work_width // 2
        self.ego = EgoRotation(self.work_width)
        self.motion = MotionProposer(self.work_width, self.work_height, self.config, self.settings.camera.height_m,
                                     downscaled=self.work_width < width)
        self.tracker = AngleTracker(self.config, fps_hint=self.settings.camera.fps)
        self.pitch_sigma_deg = 180.0 / self.work_height  # the contact row is known to one pixel
        self.timings_ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.frame_index = 0
        self._last_time: float | None = None
        self._first_time: float | None = None
        self._memory: dict[int, _TrackMemory] = {}

    def _check_frame(self, frame: np.ndarray, timestamp_s: float) -> None:
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frame must be a numpy array, got {type(frame).__name__}")
        expected = (self.height, self.width, 3)
        if frame.dtype != np.uint8 or frame.shape != expected:
            raise ValueError(
                f"frame must be uint8 of shape {expected} (H, W, BGR), got {frame.dtype} {frame.shape}"
            )
        if self._last_time is not None and not timestamp_s > self._last_time:
            raise ValueError(f"timestamps must increase: {timestamp_s} after {self._last_time}")

    def process(self, frame: np.ndarray, timestamp_s: float) -> list[ReflexTrack]:
        """All live tracks after this frame (matched, or coasting through a short occlusion)."""
        self._check_frame(frame, timestamp_s)
        self._last_time = timestamp_s
        if self._first_time is None:
            self._first_time = timestamp_s
        self.frame_index += 1
        clock = time.perf_counter
        t0 = clock()
        if self.work_width == self.width:
            small = frame
        else:
            small = cv2.resize(frame, (self.work_width, self.work_height), interpolation=cv2.INTER_AREA)
        t1 = clock()
        offset = self.ego.update(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        t2 = clock()
        regions = self.motion.propose(small, offset)
        camera = self.settings.camera
        for region in regions:
            region.distance = ground_distance(region.contact_pitch, camera.height_m, self.pitch_sigma_deg,
                                              camera.height_sigma_m)
        t3 = clock()
        tracks = self.tracker.step(regions, timestamp_s, self.ego.yaw_deg)
        live_ids = {track.track_id for track in self.tracker.tracks}
        self._memory = {tid: mem for tid, mem in self._memory.items() if tid in live_ids}
        t4 = clock()
        results, risk_ms, appearance_ms = [], 0.0, 0.0
        for track in tracks:
            a = clock()
            result_parts = self._risk(track)
            b = clock()
            appearance = self._appearance(track, small, result_parts[0])
            c = clock()
            risk_ms += b - a
            appearance_ms += c - b
            results.append(self._result(track, appearance, *result_parts))
        self.timings_ms = {
            "downscale": (t1 - t0) * 1e3, "ego": (t2 - t1) * 1e3, "motion": (t3 - t2) * 1e3,
            "track": (t4 - t3) * 1e3, "risk": risk_ms * 1e3, "appearance": appearance_ms * 1e3,
        }
        return results

    def _risk(self, track: Track) -> tuple[Distance, RiskAssessment]:
        return track.last.distance, assess(track.window(self.config.history_s), self.config, track.farthest_m,
                                             self.pitch_sigma_deg)

    def _remember(self, track: Track) -> _TrackMemory:
        if track.track_id not in self._memory:
            self._memory[track.track_id] = _TrackMemory(mask_history=deque(maxlen=self.config.mask_history_frames))
        return self._memory[track.track_id]

    def _appearance(self, track: Track, small: np.ndarray, distance: Distance) -> Appearance:
        memory = self._remember(track)
        due = memory.appearance is None or track.age_frames % self.config.appearance_every == 0
        if track.region is not None and due:
            region = track.region
            memory.appearance = measure_appearance(small, region.mask, region.top_pitch, region.contact_pitch,
                                                   region.box.width, distance)
        if memory.appearance is None:
            return Appearance("unknown", "unknown", "unknown", "moving object")
        return memory.appearance

    def _result(self, track: Track, appearance: Appearance, distance: Distance,
                assessment: RiskAssessment) -> ReflexTrack:
        memory = self._remember(track)
        # A flag needs `confirm_frames` frames in a row at the threshold, then holds while risk stays
        # within 0.1 of it, so it neither blips on one frame nor flickers on one noisy frame.
        threshold = self.config.flag_threshold
        memory.above_threshold = memory.above_threshold + 1 if assessment.risk >= threshold else 0
        settled = self._last_time - self._first_time >= self.config.settle_s
        if memory.flagged:
            memory.flagged = assessment.risk >= threshold - 0.1
        else:
            memory.flagged = settled and memory.above_threshold >= self.config.confirm_frames
        mask = None if track.region is None else track.region.mask
        if mask is not None and self.config.mask_history_frames > 0:
            memory.mask_history.append((track.last.time_s, masks.encode(mask)))
        box = track.last.box if track.region is not None else track.predict(self._last_time)
        return ReflexTrack(
            track_id=track.track_id, box=box, mask=mask, distance=distance, risk=assessment.risk,
            reason=assessment.reason, flagged=memory.flagged, tau_s=assessment.tau_s, appearance=appearance,
            first_seen_s=track.first_seen_s, age_frames=track.age_frames, missed_frames=track.missed,
            closing_mps=assessment.closing_mps, mask_history=list(memory.mask_history),
        )
