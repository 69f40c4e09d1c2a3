"""Moving-entity foreground for a walking wearer: the residual motion of `ego_motion`, made steady.

A background model cannot serve a walking wearer (everything it learnt slides away with parallax),
so the foreground comes from flow the fitted static world cannot explain. One step's residual is
noisy where flow is weak (low texture, the focus of expansion); a pixel counts as moving when its
residual held in at least two of the last three steps, which a real mover's body does and isolated
flow errors do not. The rows near the poles are left out: there the camera's own body and the
ground under it fill the view, and flow is dominated by the gait. Nor does a pixel count where the
image has no texture within a few pixels (`textured`): dense flow is unconstrained there (the aperture
problem), and on a clear or night sky its errors pass any flow tolerance and grow from pair to pair.
"""

from __future__ import annotations

import cv2
import numpy as np

from vigil360.edge.reflex.ego_motion import Residual

# Smallest eigenvalue of the 5x5 structure tensor (`ego_motion.min_eigenvalues` on 8-bit grey) below which a pixel
# has no texture. Measured (BENCHMARKS.md, issue 12): clear and night skies of the blender-data photographs
# read 1e-5-3e-5 (p90); real pedestrians of opencv-doc's vtest.avi at 1/8-1/4 size read >= 1.8e-3 at their
# 10th percentile even 40 % darker, and 99.7-100 % of their pixels lie within the dilation of textured ones.
TEXTURE_MIN_EIG = 5e-5
_TEXTURE_REACH_PX = 2  # a body's smooth interior counts when textured pixels lie this near


def textured(min_eigen: np.ndarray) -> np.ndarray:
    """bool mask of pixels with texture within `_TEXTURE_REACH_PX` (flow there is constrained), from the
    frame's `ego_motion.min_eigenvalues` (the ego stage has them already)."""
    edges = (min_eigen > TEXTURE_MIN_EIG).astype(np.uint8)
    size = 2 * _TEXTURE_REACH_PX + 1
    return cv2.dilate(edges, np.ones((size, size), np.uint8)).astype(bool)


class ResidualForeground:
    def __init__(self, width: int, height: int, min_pitch_deg: float = -40.0, max_pitch_deg: float = 45.0) -> None:
        self.width, self.height = width, height
        rows = np.arange(height)
        pitch = (height / 2.0 - rows) * 180.0 / height
        inside = np.flatnonzero((pitch >= min_pitch_deg) & (pitch <= max_pitch_deg))
        self.rows = (int(inside[0]), int(inside[-1]) + 1)  # the band: nothing outside it counts, nor is computed
        self._recent: list[np.ndarray] = []

    def reset(self) -> None:
        self._recent = []

    def update(self, residual: Residual, also: np.ndarray | None = None, texture: np.ndarray | None = None
               ) -> np.ndarray:
        """uint8 mask (0 / 255) of pixels moving on their own, from this step's residual and `also` (a
        uint8 mask of pixels found moving some other way: the long pair near the foci, `cones`), where
        `texture` (bool, from `textured`) allows."""
        r0, r1 = self.rows
        first, rows = residual.first_row, residual.magnitude.shape[0]
        if residual.magnitude.shape[1] != self.width or first > r0 or first + rows < r1:
            raise ValueError(f"residual of shape {residual.magnitude.shape} from row {first} does not cover rows "
                             f"{r0}-{r1} of a {self.height}x{self.width} frame")
        moving = residual.magnitude[r0 - first:r1 - first] > 0
        if also is not None:
            moving |= also[r0:r1] > 0
        if texture is not None:
            moving &= texture[r0:r1]
        self._recent = [*self._recent[-2:], moving]
        votes = np.sum(self._recent, axis=0)
        out = np.zeros((self.height, self.width), np.uint8)
        out[r0:r1] = np.where(votes >= min(2, len(self._recent)), 255, 0)
        return out
