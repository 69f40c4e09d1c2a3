"""What a real 360-degree camera does to a rendered frame: head tilt, auto-exposure, blur, noise.

The scene is rendered for a level camera (only turned about the vertical); a walking head's
pitch and roll are then one rotation of the whole sphere, applied here as a resampling of the
equirectangular frame (and, with nearest-neighbour sampling, of the label map, so ground-truth
masks tilt with the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np


def camera_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation taking camera-frame directions (x right, y up, z forward) to the level frame:
    roll (right side down) first, then pitch (nose up)."""
    p, r = np.radians(pitch_deg), np.radians(roll_deg)
    pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    roll = np.array([[np.cos(r), np.sin(r), 0], [-np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return pitch @ roll


@lru_cache(maxsize=4)
def _pixel_directions(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f32 = np.float32
    yaw = (np.arange(width, dtype=f32) - f32(width / 2.0)) * f32(2 * np.pi / width)
    pitch = (f32(height / 2.0) - np.arange(height, dtype=f32)) * f32(np.pi / height)
    cp, sp = np.cos(pitch)[:, None], np.sin(pitch)[:, None]
    sy, cy = np.sin(yaw)[None, :], np.cos(yaw)[None, :]
    return cp * sy, np.ascontiguousarray(np.broadcast_to(sp, (height, width))), cp * cy


def rotation_maps(width: int, height: int, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps that show, at each output pixel, what the source frame shows in direction
    `rotation @ d` (d: the output pixel's direction). Pixel (col, row) is at yaw = (col - W/2) 2pi/W,
    pitch = (H/2 - row) pi/H, the renderer's convention, so the identity maps every pixel to itself."""
    f32 = np.float32
    x, y, z = _pixel_directions(width, height)
    m = rotation.astype(f32)
    rx = m[0, 0] * x + m[0, 1] * y + m[0, 2] * z
    ry = m[1, 0] * x + m[1, 1] * y + m[1, 2] * z
    rz = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z
    map_x = np.arctan2(rx, rz) * f32(width / (2 * np.pi)) + f32(width / 2.0)
    map_y = f32(height / 2.0) - np.arcsin(np.clip(ry, -1, 1)) * f32(height / np.pi)
    return np.mod(map_x, f32(width)).astype(f32), np.clip(map_y, 0, height - 1).astype(f32)


def rotate_equirect(image: np.ndarray, rotation: np.ndarray, nearest: bool = False,
                    maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """`image` turned by `rotation`; `maps` (from `rotation_maps`) when several images turn alike."""
    height, width = image.shape[:2]
    map_x, map_y = rotation_maps(width, height, rotation) if maps is None else maps
    return cv2.remap(image, map_x, map_y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)


@dataclass(frozen=True)
class Exposure:
    """Auto-exposure gain over time: a slow drift and sudden steps (a camera re-metering as the
    wearer turns from shade to sun), each step settling within ~0.15 s."""

    drift_amp: float
    drift_period_s: float
    drift_phase: float
    step_times: tuple[float, ...]
    step_gains: tuple[float, ...]

    @classmethod
    def fixed(cls) -> Exposure:
        return cls(0.0, 1.0, 0.0, (), ())

    @classmethod
    def draw(cls, rng: np.random.Generator, duration_s: float) -> Exposure:
        times, gains, t, level = [], [], float(rng.uniform(1.5, 4.0)), 1.0
        while t < duration_s:
            # Up or down at random, but back toward 1 once off it: metering hunts about a level.
            up = rng.random() < 0.5 if abs(level - 1.0) < 0.05 else level < 1.0
            step = float(rng.uniform(1.10, 1.25) if up else rng.uniform(0.80, 0.90))
            times.append(t)
            gains.append(step)
            level *= step
            t += float(rng.uniform(3.0, 6.0))
        return cls(float(rng.uniform(0.03, 0.07)), float(rng.uniform(5.0, 9.0)), float(rng.uniform(0, 2 * np.pi)),
                   tuple(times), tuple(gains))

    def with_step(self, when: float, step: float) -> Exposure:
        """The same exposure with one more step at `when`."""
        order = np.argsort([*self.step_times, when], kind="stable")
        times, gains = [*self.step_times, when], [*self.step_gains, step]
        return Exposure(self.drift_amp, self.drift_period_s, self.drift_phase, tuple(float(times[i]) for i in order),
                        tuple(float(gains[i]) for i in order))

    @property
    def is_fixed(self) -> bool:
        return self.drift_amp == 0.0 and not self.step_times

    def gain(self, t: float) -> float:
        value = 1.0 + self.drift_amp * np.sin(2 * np.pi * t / self.drift_period_s + self.drift_phase)
        for when, step in zip(self.step_times, self.step_gains, strict=True):
            value *= 1.0 + (step - 1.0) * float(np.clip((t - when) / 0.15, 0.0, 1.0))
        return float(value)
