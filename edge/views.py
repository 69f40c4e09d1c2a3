"""Perspective views of an equirectangular frame, and their exact inverse for masks.

A `View` is a pinhole camera at the sphere's centre. `ViewSampler` precomputes the
`cv2.remap` maps once per (view, frame size) - py360convert's `e2p` rebuilds them on every
call, about 5x slower on this machine - and maps masks drawn in the view back to
equirectangular pixels by projecting each equirectangular pixel of the view's footprint
into the view (not by splatting view pixels, which leaves holes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vigil360.edge.geometry import (
    angles_to_pixel,
    angles_to_vector,
    check_equirect_shape,
    pixel_to_angles,
    rotation,
    vector_to_angles,
    wrap_yaw,
    yaw_difference,
)


@dataclass(frozen=True)
class View:
    """A perspective view: centre direction, horizontal field of view, output size in pixels."""

    yaw: float
    pitch: float = 0.0
    fov: float = 90.0
    width: int = 512
    height: int = 512
    roll: float = 0.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.fov < 179.0:
            raise ValueError(f"a perspective view needs 1 <= fov < 179 degrees, got {self.fov}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"view size must be positive, got {self.width}x{self.height}")

    @property
    def focal(self) -> float:
        return (self.width / 2.0) / np.tan(np.radians(self.fov) / 2.0)

    def recentred(self, yaw: float, pitch: float | None = None) -> View:
        return View(float(wrap_yaw(yaw)), self.pitch if pitch is None else pitch, self.fov,
                    self.width, self.height, self.roll)

    def pixel_rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """World unit vectors for view pixel positions (pixel centres at integer + 0.5)."""
        cam = np.stack(
            [(u + 0.5 - self.width / 2.0) / self.focal, -(v + 0.5 - self.height / 2.0) / self.focal,
             np.ones_like(u, dtype=np.float64)],
            axis=-1,
        )
        cam /= np.linalg.norm(cam, axis=-1, keepdims=True)
        return cam @ rotation(self.yaw, self.pitch, self.roll).T

    def project(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World vectors -> (u, v, in_front) view pixel positions."""
        cam = vectors @ rotation(self.yaw, self.pitch, self.roll)
        z = cam[..., 2]
        in_front = z > 1e-6
        safe_z = np.where(in_front, z, 1.0)
        u = cam[..., 0] / safe_z * self.focal + self.width / 2.0 - 0.5
        v = -cam[..., 1] / safe_z * self.focal + self.height / 2.0 - 0.5
        return u, v, in_front

    def angles_to_view_pixel(self, yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.project(angles_to_vector(yaw, pitch))

    def view_pixel_to_angles(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return vector_to_angles(self.pixel_rays(np.asarray(u, float), np.asarray(v, float)))


def horizon_tiles(count: int = 4, fov: float = 120.0, size: int = 512, pitch: float = 0.0) -> list[View]:
    """Overlapping views around the horizon; the first is centred directly behind the wearer,
    where the seam is, so nothing behind the wearer is ever split between two tiles' edges."""
    if count < 1 or count * fov < 360.0:
        raise ValueError(f"{count} views of {fov} deg do not cover the horizon")
    step = 360.0 / count
    return [View(float(wrap_yaw(-180.0 + i * step)), pitch, fov, size, size) for i in range(count)]


@lru_cache(maxsize=64)
def _forward_maps(view: View, eq_width: int, eq_height: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0 : view.height, 0 : view.width].astype(np.float64)
    yaw, pitch = vector_to_angles(view.pixel_rays(u, v))
    x, y = angles_to_pixel(yaw, pitch, eq_width, eq_height)
    return x.astype(np.float32), np.clip(y, 0, eq_height - 1).astype(np.float32)


def _footprint(view: View, eq_width: int, eq_height: int, margin_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular columns and rows that can see into the view (seam-aware)."""
    n = 64
    edge_u = np.concatenate([np.linspace(-0.5, view.width - 0.5, n), np.full(n, view.width - 0.5),
                             np.linspace(view.width - 0.5, -0.5, n), np.full(n, -0.5)])
    edge_v = np.concatenate([np.full(n, -0.5), np.linspace(-0.5, view.height - 0.5, n),
                             np.full(n, view.height - 0.5), np.linspace(view.height - 0.5, -0.5, n)])
    yaw, pitch = view.view_pixel_to_angles(edge_u, edge_v)
    up = angles_to_vector(0.0, 90.0)
    down = angles_to_vector(0.0, -90.0)
    pole_inside = any(view.project(p)[2] and _inside(view, *view.project(p)[:2]) for p in (up, down))
    deg_x = 360.0 / eq_width
    rel = yaw_difference(yaw, view.yaw)
    if pole_inside or np.ptp(rel) >= 360.0 - deg_x:
        cols = np.arange(eq_width)
    else:
        first = int(np.floor((view.yaw + rel.min()) / deg_x)) - margin_px
        last = int(np.ceil((view.yaw + rel.max()) / deg_x)) + margin_px
        cols = (np.arange(first, last + 1) + eq_width // 2) % eq_width
    _, y_edge = angles_to_pixel(0.0, pitch, eq_width, eq_height)
    y_top = 0 if pole_inside and view.pitch > 0 else int(np.floor(y_edge.min())) - margin_px
    y_bottom = eq_height - 1 if pole_inside and view.pitch < 0 else int(np.ceil(y_edge.max())) + margin_px
    rows = np.arange(max(0, y_top), min(eq_height - 1, y_bottom) + 1)
    return np.unique(cols), rows


def _inside(view: View, u: float, v: float) -> bool:
    return bool(-0.5 <= u <= view.width - 0.5 and -0.5 <= v <= view.height - 0.5)


class ViewSampler:
    """Samples views from frames of one equirectangular size, with cached maps."""

    def __init__(self, eq_width: int, eq_height: int) -> None:
        check_equirect_shape(eq_width, eq_height)
        self.eq_width, self.eq_height = eq_width, eq_height

    def sample(self, frame: np.ndarray, view: View, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The perspective image (or mask) that `view` sees in `frame`."""
        if frame.shape[:2] != (self.eq_height, self.eq_width):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, sampler expects "
                             f"{self.eq_width}x{self.eq_height}")
        map_x, map_y = _forward_maps(view, self.eq_width, self.eq_height)
        source = frame.astype(np.uint8) if frame.dtype == bool else frame
        # BORDER_WRAP makes interpolation across the seam (x near W) read column 0, as it should.
        out = cv2.remap(source, map_x, map_y, interpolation, borderMode=cv2.BORDER_WRAP)
        return out.astype(bool) if frame.dtype == bool else out

    def mask_to_equirect(self, view_mask: np.ndarray, view: View) -> np.ndarray:
        """Map a boolean mask drawn in `view` back to a full equirectangular mask."""
        if view_mask.shape != (view.height, view.width):
            raise ValueError(f"mask is {view_mask.shape}, view is {(view.height, view.width)}")
        out = np.zeros((self.eq_height, self.eq_width), dtype=bool)
        if not view_mask.any():
            return out
        cols, rows = _footprint(view, self.eq_width, self.eq_height)
        xx, yy = np.meshgrid(cols.astype(np.float64), rows.astype(np.float64))
        yaw, pitch = pixel_to_angles(xx, yy, self.eq_width, self.eq_height)
        u, v, in_front = view.angles_to_view_pixel(yaw, pitch)
        ui, vi = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
        valid = in_front & (ui >= 0) & (ui < view.width) & (vi >= 0) & (vi < view.height)
        hit = np.zeros_like(valid)
        hit[valid] = view_mask[vi[valid], ui[valid]]
        out[np.ix_(rows, cols)] = hit
        return out

    def box_to_angles(
        self, view: View, box_xyxy: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """A box drawn in view pixels -> (yaw, pitch, width, height) in degrees, by its edges."""
        x0, y0, x1, y1 = box_xyxy
        n = 16
        us = np.concatenate([np.linspace(x0, x1, n), np.full(n, x1), np.linspace(x1, x0, n), np.full(n, x0)])
        vs = np.concatenate([np.full(n, y0), np.linspace(y0, y1, n), np.full(n, y1), np.linspace(y1, y0, n)])
        yaw, pitch = view.view_pixel_to_angles(us - 0.5, vs - 0.5)
        rel = yaw_difference(yaw, view.yaw)
        centre = float(wrap_yaw(view.yaw + (rel.max() + rel.min()) / 2.0))
        return centre, float((pitch.max() + pitch.min()) / 2.0), float(np.ptp(rel)), float(np.ptp(pitch))
