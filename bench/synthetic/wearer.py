"""How the wearer (and so the camera) moves: standing, turning on the spot, walking, or a mix.

World frame as in `world`: x right, z forward (the street's axis), y up; at the scenario's key
moment the wearer stands at the origin. A walking body is not a dolly: the head bobs 2-4 cm at
the step frequency (~1.8-2 Hz, two steps per stride), pitches and rolls 1-3 degrees with each
step and wobbles in yaw; these are what turn a static street into "motion" for a naive
background model, so they are drawn per clip, not fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

WearerMode = Literal["standing", "turning", "walking", "mixed"]
WEARER_MODES: tuple[WearerMode, ...] = ("standing", "turning", "walking", "mixed")


@dataclass(frozen=True)
class Pose:
    """Camera pose at one instant: position (m), height above ground (m) and body angles (deg).

    yaw is positive to the right (clockwise seen from above), pitch positive up, roll positive
    right side down; the camera's rotation is yaw, then pitch, then roll."""

    x: float
    z: float
    height_m: float
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class WearerMotion:
    mode: WearerMode
    camera_height_m: float
    event_s: float
    turning_deg_s: float = 0.0
    speed_mps: float = 0.0
    step_hz: float = 1.9
    bob_m: float = 0.0
    pitch_amp_deg: float = 0.0
    roll_amp_deg: float = 0.0
    yaw_wobble_deg: float = 0.0
    phase: float = 0.0
    # mixed: (start_s, end_s) of a stop, and the look-around turn made while stopped
    stop: tuple[float, float] | None = None
    look_deg: float = 0.0

    @classmethod
    def draw(cls, mode: WearerMode, rng: np.random.Generator, camera_height_m: float, event_s: float,
             duration_s: float, turning_deg_s: float = 0.0, speed_mps: float | None = None) -> WearerMotion:
        if mode not in WEARER_MODES:
            raise ValueError(f"wearer mode must be one of {WEARER_MODES}, got {mode!r}")
        if mode in ("standing", "turning"):
            return cls(mode, camera_height_m, event_s, turning_deg_s=turning_deg_s)
        speed = float(rng.uniform(0.5, 1.6)) if speed_mps is None else speed_mps
        stop = None
        look = 0.0
        if mode == "mixed":
            start = float(rng.uniform(0.15, 0.55) * duration_s)
            stop = (start, start + float(rng.uniform(1.5, 3.0)))
            look = float(rng.choice([-1, 1]) * rng.uniform(20, 60))
        return cls(
            mode, camera_height_m, event_s, speed_mps=speed, step_hz=float(rng.uniform(1.8, 2.0)),
            bob_m=float(rng.uniform(0.02, 0.04)) / 2.0, pitch_amp_deg=float(rng.uniform(1.0, 3.0)) / 2.0,
            roll_amp_deg=float(rng.uniform(1.0, 3.0)) / 2.0, yaw_wobble_deg=float(rng.uniform(0.5, 2.0)) / 2.0,
            phase=float(rng.uniform(0, 2 * np.pi)), stop=stop, look_deg=look,
        )

    def _walking(self, t: float | np.ndarray) -> np.ndarray:
        """How much of full walking gait is under way at t (0 while stopped), eased over 0.5 s."""
        t = np.asarray(t, dtype=np.float64)
        if self.mode not in ("walking", "mixed"):
            return np.zeros_like(t)
        if self.stop is None:
            return np.ones_like(t)
        start, end = self.stop
        ease = 0.5
        return np.clip(np.maximum((start - t) / ease, (t - end) / ease), 0.0, 1.0)

    def _distance(self, t: float) -> float:
        """Metres walked along +z since the key moment (negative before it)."""
        if self.mode not in ("walking", "mixed"):
            return 0.0
        if self.stop is None:
            return self.speed_mps * (t - self.event_s)
        times, walked = self._odometer
        return float(np.interp(t, times, walked))

    @cached_property
    def _odometer(self) -> tuple[np.ndarray, np.ndarray]:
        """Distance walked on a fine time grid (the eased stop has no tidy closed form), zero at event_s."""
        times = np.arange(self.event_s - 120.0, self.event_s + 120.0, 0.005)
        speeds = self._walking(times) * self.speed_mps
        walked = np.concatenate([[0.0], np.cumsum((speeds[1:] + speeds[:-1]) / 2 * np.diff(times))])
        return times, walked - np.interp(self.event_s, times, walked)

    def pose(self, t: float) -> Pose:
        heading = self.turning_deg_s * (t - self.event_s)
        gait = float(self._walking(t))
        if self.stop is not None:
            start, end = self.stop
            # Look around while stopped, back to the street's axis when walking again.
            heading += self.look_deg * float(np.clip(min((t - start) / 0.8, (end - t) / 0.8, 1.0), 0.0, 1.0))
        # Vertical bob and pitch at the step frequency; roll and yaw wobble at the stride frequency.
        step = 2 * np.pi * self.step_hz * t + self.phase
        stride = step / 2.0
        height = self.camera_height_m + gait * self.bob_m * np.cos(step)
        pitch = gait * self.pitch_amp_deg * np.sin(step + 0.6)
        roll = gait * self.roll_amp_deg * np.sin(stride)
        yaw = heading + gait * self.yaw_wobble_deg * np.sin(stride + 1.1)
        return Pose(0.0, self._distance(t), float(height), float(yaw), float(pitch), float(roll))

    @property
    def translates(self) -> bool:
        return self.mode in ("walking", "mixed")

    @property
    def tilts(self) -> bool:
        return self.translates and (self.pitch_amp_deg > 0 or self.roll_amp_deg > 0)
