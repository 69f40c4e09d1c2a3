"""Moving-entity foreground for a walking wearer: the residual motion of `ego_motion`, made steady.

A background model cannot serve a walking wearer (everything it learnt slides away with parallax),
so the foreground comes from flow the fitted static world cannot explain. One step's residual is
noisy where flow is weak (low texture, the focus of expansion); a pixel counts as moving when its
residual held in at least two of the last three steps, which a real mover's body does and isolated
flow errors do not. The rows near the poles are left out: there the camera's own body and the
ground under it fill the view, and flow is dominated by the gait.
"""

from __future__ import annotations

import numpy as np

from vigil360.edge.reflex.ego_motion import Residual


class ResidualForeground:
    def __init__(self, width: int, height: int, min_pitch_deg: float = -40.0, max_pitch_deg: float = 45.0) -> None:
        self.width, self.height = width, height
        rows = np.arange(height)
        pitch = (height / 2.0 - rows) * 180.0 / height
        self.band = ((pitch >= min_pitch_deg) & (pitch <= max_pitch_deg))[:, None]
        self._recent: list[np.ndarray] = []

    def reset(self) -> None:
        self._recent = []

    def update(self, residual: Residual, also: np.ndarray | None = None) -> np.ndarray:
        """uint8 mask (0 / 255) of pixels moving on their own, from this step's residual and `also` (a
        uint8 mask of pixels found moving some other way: the long pair near the foci, `cones`)."""
        if residual.magnitude.shape != (self.height, self.width):
            raise ValueError(f"residual of shape {residual.magnitude.shape}, expected {(self.height, self.width)}")
        moving = residual.magnitude > 0
        if also is not None:
            moving |= also > 0
        moving &= self.band
        self._recent = [*self._recent[-2:], moving]
        votes = np.sum(self._recent, axis=0)
        return np.where(votes >= min(2, len(self._recent)), 255, 0).astype(np.uint8)
