"""The synthetic world: scripted trajectories and a textured background.

World frame: the wearer stands at the origin, x to the right, z forward (at the scenario's
key moment), y up; the ground is y = 0. Actors are upright billboards that always face the
camera (see `sprites` for what is painted on them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Track:
    """Piecewise-linear path: times (s) -> ground position (x, z), elevation and reach (0-1).

    Outside [active_from, active_to] the actor is not in the scene (a ball still in the hand).
    """

    times: np.ndarray
    x: np.ndarray
    z: np.ndarray
    elevation: np.ndarray | None = None
    reach: np.ndarray | None = None
    active_from: float = -np.inf
    active_to: float = np.inf
    _walked: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        if np.any(np.diff(self.times) <= 0):
            raise ValueError("track times must increase strictly")
        self.x = np.asarray(self.x, dtype=np.float64)
        self.z = np.asarray(self.z, dtype=np.float64)
        zeros = np.zeros_like(self.times)
        self.elevation = zeros if self.elevation is None else np.asarray(self.elevation, dtype=np.float64)
        self.reach = zeros if self.reach is None else np.asarray(self.reach, dtype=np.float64)
        steps = np.hypot(np.diff(self.x), np.diff(self.z))
        self._walked = np.concatenate([[0.0], np.cumsum(steps)])

    def active(self, t: float) -> bool:
        return self.active_from <= t <= self.active_to

    def position(self, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.interp(t, self.times, self.x),
            np.interp(t, self.times, self.z),
            np.interp(t, self.times, self.elevation),
        )

    def reach_at(self, t: float) -> float:
        return float(np.interp(t, self.times, self.reach))

    def walked(self, t: float) -> float:
        return float(np.interp(t, self.times, self._walked))

    def speed(self, t: float, dt: float = 0.05) -> float:
        return (self.walked(t + dt) - self.walked(t - dt)) / (2 * dt)


@dataclass(frozen=True)
class Courtyard:
    """A square paved yard, walls `half` metres from the wearer on each side."""

    half: float
    wall_height: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Courtyard:
        return cls(float(rng.uniform(16.0, 24.0)), float(rng.uniform(6.0, 10.0)))

    def contains(self, x: float, z: float) -> bool:
        # Actors outside are behind a wall: they come and go through it, as through a gateway.
        return abs(x) < self.half and abs(z) < self.half


def background(
    width: int, height: int, camera_height: float, yard: Courtyard, rng: np.random.Generator
) -> np.ndarray:
    """An equirectangular panorama (uint8 BGR) of the courtyard, walled by facades.

    Rendered once per clip by casting every pixel's ray into the yard; textures are procedural
    so there is real structure for optical flow and background subtraction.
    """
    cols = (np.arange(width, dtype=np.float32) - width / 2.0) * (2 * np.pi / width)
    rows = (height / 2.0 - np.arange(height, dtype=np.float32)) * (np.pi / height)
    sin_y, cos_y = np.sin(cols)[None, :], np.cos(cols)[None, :]
    cos_p, sin_p = np.cos(rows)[:, None], np.sin(rows)[:, None]
    dx, dz, dy = cos_p * sin_y, cos_p * cos_y, np.broadcast_to(sin_p, (height, width))
    half, wall_h = yard.half, yard.wall_height
    horiz = np.maximum(np.maximum(np.abs(dx), np.abs(dz)), 1e-6)
    lam_wall = half / horiz
    lam_ground = np.where(dy < -1e-6, camera_height / np.maximum(-dy, 1e-6), np.inf)
    ground = lam_ground < lam_wall
    hit_y = camera_height + lam_wall * dy
    wall = ~ground & (hit_y <= wall_h)
    image = np.empty((height, width, 3), dtype=np.float32)

    # Sky: a vertical gradient.
    sky_t = np.clip(sin_p, 0, 1)
    image[...] = (
        np.array([235, 200, 170], np.float32) * (1 - sky_t[..., None])
        + np.array([200, 140, 90], np.float32) * sky_t[..., None]
    )

    # Ground: 0.6 m paving tiles with grout lines and per-tile shade.
    gx, gz = lam_ground[ground] * dx[ground], lam_ground[ground] * dz[ground]
    tile = 0.6
    ix, iz = np.floor(gx / tile).astype(np.int64), np.floor(gz / tile).astype(np.int64)
    shade = ((ix * 73856093) ^ (iz * 19349663)) % 97 / 97.0
    fx, fz = gx / tile - ix, gz / tile - iz
    grout = (np.minimum(np.minimum(fx, 1 - fx), np.minimum(fz, 1 - fz)) < 0.04).astype(np.float32)
    base = np.array([120, 125, 130], np.float32)
    image[ground] = base * (0.8 + 0.35 * shade[:, None]) * (1 - 0.45 * grout[:, None])

    # Walls: coloured facade segments with bricks and windows.
    lam = lam_wall[wall]
    wx, wz, wy = lam * dx[wall], lam * dz[wall], hit_y[wall]
    along = np.where(
        np.abs(wx) >= np.abs(wz) - 1e-3, wz + 4 * half * np.sign(wx), wx + 2 * half * np.sign(wz)
    )
    segment = np.floor(along / 4.0).astype(np.int64)
    facade = rng.uniform(70, 220, size=(64, 3)).astype(np.float32)
    colour = facade[segment % 64]
    brick_row = np.floor(wy / 0.12).astype(np.int64)
    brick_u = along / 0.3 + 0.5 * (brick_row % 2)
    mortar = (((wy / 0.12) % 1.0) < 0.12) | ((brick_u % 1.0) < 0.06)
    colour = colour * np.where(mortar, 0.7, 1.0)[:, None]
    window = ((along % 2.0) > 0.6) & ((along % 2.0) < 1.5) & ((wy % 3.0) > 1.0) & ((wy % 3.0) < 2.4)
    colour[window] = np.array([80, 60, 50], np.float32) + 40 * (segment[window] % 3)[:, None]
    image[wall] = colour

    # Low-frequency illumination so no two directions look the same.
    light = cv2.resize(
        rng.uniform(0.8, 1.15, size=(9, 18)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    image *= light[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)
