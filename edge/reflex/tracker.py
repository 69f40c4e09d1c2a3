"""Frame-to-frame association of motion regions, in angles, with stable ids through the seam.

State per track: box centre and angular size with a constant-velocity model (deg/s), fitted by
least squares over a short window instead of a recursive filter, so one bad frame moves the
estimate by a bounded amount. Association is Hungarian on (1 - box IoU) plus a normalised
centre distance, with yaw differences taken the short way round (so an entity crossing the
seam behind the wearer keeps its id). Unmatched tracks coast on their prediction for a few
frames (short occlusions) before they are dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil360.config import ReflexConfig
from vigil360.edge.geometry import Distance, anglebox_iou, bearing_rate, linear_slope, wrap_yaw, yaw_difference
from vigil360.edge.reflex.motion import OnTheGround, Region
from vigil360.schema import AngleBox

# Sigmas of the two range measurements' combined error a frame-to-frame range change may use.
_RANGE_GATE_SIGMAS = 3.0


@lru_cache(maxsize=64)
def _pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(count, k=1)


def pairwise_slopes(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Slopes between every pair of samples (later minus earlier), pairs at equal times left out."""
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    i, j = _pairs(values.size)
    dt = times[j] - times[i]
    keep = dt > 0
    return (values[j] - values[i])[keep] / dt[keep]


@dataclass
class Observation(OnTheGround):
    time_s: float
    box: AngleBox
    contact_pitch: float
    top_pitch: float
    distance: Distance
    heading_deg: float = 0.0  # the wearer's accumulated turn: world bearing = ground_yaw + heading_deg
    contact_yaw: float | None = None  # bearing of the ground contact (None: the box centre's)
    wearer_x: float = 0.0  # where the wearer was (m, world frame): a walking wearer's own travel
    wearer_z: float = 0.0
    clipped: bool = False  # the region was cut by the edge of its proposals' area (`Region.clipped`)


@dataclass
class Track:
    track_id: int
    first_seen_s: float
    observations: deque[Observation]
    region: Region | None  # this frame's region; None while coasting
    hits: int = 1
    age_frames: int = 1
    missed: int = 0
    velocity: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # yaw, pitch, width, height deg/s
    farthest_m: float = 0.0  # farthest finite ground distance ever observed (the window forgets)

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    def predict(self, time_s: float) -> AngleBox:
        box = self.last.box
        dt = time_s - self.last.time_s
        vyaw, vpitch, vwidth, vheight = self.velocity
        return AngleBox(
            yaw=float(wrap_yaw(box.yaw + vyaw * dt)),
            pitch=float(np.clip(box.pitch + vpitch * dt, -90, 90)),
            width=float(np.clip(box.width + vwidth * dt, 0, 360)),
            height=float(np.clip(box.height + vheight * dt, 0, 180)),
        )

    def window(self, history_s: float) -> list[Observation]:
        end = self.last.time_s
        return [obs for obs in self.observations if end - obs.time_s <= history_s]

    def refit_velocity(self, history_s: float) -> None:
        recent = self.window(history_s)
        times = np.array([obs.time_s for obs in recent])
        self.velocity = (
            bearing_rate(np.array([obs.box.yaw for obs in recent]), times),
            linear_slope(np.array([obs.box.pitch for obs in recent]), times),
            linear_slope(np.array([obs.box.width for obs in recent]), times),
            linear_slope(np.array([obs.box.height for obs in recent]), times),
        )


def _finite_or_zero(metres: float) -> float:
    return float(metres) if np.isfinite(metres) else 0.0


def _observe(region: Region, time_s: float, heading_deg: float, wearer_xz: tuple[float, float]) -> Observation:
    return Observation(time_s, region.box, region.contact_pitch, region.top_pitch, region.distance, heading_deg,
                       region.contact_yaw, *wearer_xz, clipped=region.clipped)


class AngleTracker:
    def __init__(self, config: ReflexConfig) -> None:
        self.config = config
        self.tracks: list[Track] = []
        self._next_id = 1
        # Observations are kept for twice the fit window, whatever the frame rate.
        self._keep_s = 2.0 * config.history_s

    def _cost(self, track: Track, predicted: AngleBox, region: Region, time_s: float) -> float:
        box = region.box
        # A near entity's big box overlapping a far one behind it must not hand its track (and its flag)
        # over: the ground range may change by what a street allows plus the measurement's own error.
        # Far away that error is large (one contact row is metres at 15-20 m, and a bike's wheel or a
        # walker's legs come and go in the mask), and a strict gate there breaks the track of exactly
        # the fast approach whose history the alert needs.
        if not self._range_plausible(track.last, region, time_s):
            return np.inf
        gate = self.config.gate_deg
        dyaw = abs(float(yaw_difference(predicted.yaw, box.yaw)))
        dpitch = abs(predicted.pitch - box.pitch)
        reach_yaw = gate + (predicted.width + box.width) / 4.0
        reach_pitch = gate + (predicted.height + box.height) / 4.0
        if dyaw > reach_yaw or dpitch > reach_pitch:
            return np.inf
        iou = anglebox_iou(predicted, box)
        # Size-scaled reach lets a big, near entity's box change shape; it must not let that
        # track jump onto a separate small region beside it.
        if iou == 0.0 and (dyaw > gate or dpitch > gate):
            return np.inf
        return (1.0 - iou) + 0.5 * (dyaw / reach_yaw + dpitch / reach_pitch)

    def _range_plausible(self, last: Observation, region: Region, time_s: float) -> bool:
        before, now = last.distance, region.distance
        if not (np.isfinite(before.metres) and np.isfinite(now.metres)):
            return True
        noise = _RANGE_GATE_SIGMAS * float(np.hypot(before.sigma, now.sigma))
        return abs(now.metres - before.metres) <= self.config.max_speed_mps * (time_s - last.time_s) + noise

    def step(self, regions: list[Region], time_s: float, heading_deg: float = 0.0,
             wearer_xz: tuple[float, float] = (0.0, 0.0)) -> list[Track]:
        """Associate this frame's regions; returns the tracks matched or coasting this frame.
        `heading_deg` (the wearer's accumulated turn) and `wearer_xz` (where the wearer has walked to,
        metres) are kept with each observation."""
        predictions = [track.predict(time_s) for track in self.tracks]
        cost = np.full((len(self.tracks), len(regions)), np.inf)
        for i, predicted in enumerate(predictions):
            for j, region in enumerate(regions):
                cost[i, j] = self._cost(self.tracks[i], predicted, region, time_s)
        matched_tracks: set[int] = set()
        matched_regions: set[int] = set()
        if cost.size and np.isfinite(cost).any():
            finite = np.where(np.isfinite(cost), cost, 1e6)
            rows, cols = linear_sum_assignment(finite)
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                if np.isfinite(cost[i, j]):
                    self._update(self.tracks[i], regions[j], time_s, heading_deg, wearer_xz)
                    matched_tracks.add(i)
                    matched_regions.add(j)
        survivors = []
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.region = None
                track.missed += 1
                track.age_frames += 1
            if time_s - track.last.time_s <= self.config.max_missed_s + 1e-9:
                survivors.append(track)
        for j, region in enumerate(regions):
            if j in matched_regions:
                continue
            # A leftover fragment of an entity that already has a track is not a new entity.
            if any(anglebox_iou(region.box, self.tracks[i].last.box) > 0.2 for i in matched_tracks):
                continue
            survivors.append(self._new_track(region, time_s, heading_deg, wearer_xz))
        self.tracks = survivors
        return [track for track in self.tracks if self._reportable(track)]

    def _reportable(self, track: Track) -> bool:
        if self.config.min_track_s <= 0:
            return True
        return track.hits >= 2 and track.last.time_s - track.first_seen_s >= self.config.min_track_s - 1e-9

    def _new_track(self, region: Region, time_s: float, heading_deg: float,
                   wearer_xz: tuple[float, float]) -> Track:
        observation = _observe(region, time_s, heading_deg, wearer_xz)
        track = Track(self._next_id, time_s, deque([observation]), region)
        track.farthest_m = _finite_or_zero(region.distance.metres)
        self._next_id += 1
        return track

    def _update(self, track: Track, region: Region, time_s: float, heading_deg: float,
                wearer_xz: tuple[float, float]) -> None:
        track.observations.append(_observe(region, time_s, heading_deg, wearer_xz))
        while time_s - track.observations[0].time_s > self._keep_s:
            track.observations.popleft()
        track.farthest_m = max(track.farthest_m, _finite_or_zero(region.distance.metres))
        track.region = region
        track.hits += 1
        track.age_frames += 1
        track.missed = 0
        track.refit_velocity(self.config.history_s)
