"""SAM2 tracking on 360-degree video: each entity in its own perspective view, masks in equirect pixels.

SAM2 (in `vigil360.models`) knows nothing about spheres. This wrapper samples, for every entity,
a pinhole view centred on it, tracks the entity in that view stream (its own memory bank, through
`Sam2Tracker.spawn`), maps the view mask back to equirectangular pixels with the exact inverse of
`ViewSampler`, and re-centres the view on the mask's angular centre for the next frame. Because
the view follows the entity, an entity crossing the seam behind the wearer (yaw +-180) stays in
the middle of its view and is never split between two image borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil360.edge.geometry import check_equirect_shape, mask_to_anglebox, yaw_difference
from vigil360.edge.views import View, ViewSampler
from vigil360.schema import AngleBox


@dataclass
class _Entity:
    tracker: object  # a Sam2Tracker (or anything with add_object/step of the same shape)
    view: View
    frame_index: int


class Tracker360:
    """Track entities on equirectangular frames; `step` returns equirectangular bool masks.

    `recentre_deg`: the view follows the entity once its mask centre is this far from the view
    centre (a small dead band keeps the view still for a jittering mask; SAM2's memories stay
    roughly aligned because the entity stays near the middle of its view).
    """

    def __init__(
        self,
        tracker,
        eq_width: int,
        eq_height: int,
        view_fov: float = 90.0,
        view_size: int = 512,
        recentre_deg: float = 2.0,
        min_box_fov_ratio: float = 1.5,
    ) -> None:
        check_equirect_shape(eq_width, eq_height)
        self.tracker = tracker
        self.sampler = ViewSampler(eq_width, eq_height)
        self.view_fov, self.view_size = view_fov, view_size
        self.recentre_deg = recentre_deg
        self.min_box_fov_ratio = min_box_fov_ratio
        self.entities: dict[str, _Entity] = {}
        self.frame_index = 0

    def _view_for(self, box: AngleBox) -> View:
        # Widen the view for big entities so the box keeps a margin inside it.
        fov = min(170.0, max(self.view_fov, self.min_box_fov_ratio * max(box.width, box.height)))
        return View(
            yaw=box.yaw,
            pitch=float(np.clip(box.pitch, -80.0, 80.0)),
            fov=fov,
            width=self.view_size,
            height=self.view_size,
        )

    def box_in_view(self, view: View, box: AngleBox) -> tuple[float, float, float, float]:
        """The angle box's outline projected into the view, as an x0, y0, x1, y1 pixel box (clipped)."""
        n = 16
        yaw = (
            box.yaw
            + np.concatenate(
                [np.linspace(-0.5, 0.5, n), np.full(n, 0.5), np.linspace(0.5, -0.5, n), np.full(n, -0.5)]
            )
            * box.width
        )
        pitch = (
            box.pitch
            + np.concatenate(
                [np.full(n, 0.5), np.linspace(0.5, -0.5, n), np.full(n, -0.5), np.linspace(-0.5, 0.5, n)]
            )
            * box.height
        )
        u, v, in_front = view.angles_to_view_pixel(yaw, np.clip(pitch, -90.0, 90.0))
        if not in_front.any():
            raise ValueError(f"box {box} is not in front of its view")
        u, v = u[in_front], v[in_front]
        x0, x1 = np.clip([u.min() + 0.5, u.max() + 0.5], 0, view.width)
        y0, y1 = np.clip([v.min() + 0.5, v.max() + 0.5], 0, view.height)
        return float(x0), float(y0), float(max(x1, x0 + 1)), float(max(y1, y0 + 1))

    def add(self, entity_id: str, frame: np.ndarray, angle_box: AngleBox) -> np.ndarray:
        """Start tracking `entity_id` on this frame from its angle box; returns its equirect mask now."""
        view = self._view_for(angle_box)
        tracker = self.tracker.spawn()
        image = self.sampler.sample(frame, view)
        result = tracker.add_object(entity_id, 0, box_xyxy=self.box_in_view(view, angle_box), frame=image)
        self.entities[entity_id] = _Entity(tracker, view, 0)
        mask = self.sampler.mask_to_equirect(result.mask, view)
        self._follow(self.entities[entity_id], mask)
        return mask

    def remove(self, entity_id: str) -> None:
        self.entities.pop(entity_id, None)

    def reset(self) -> None:
        self.entities.clear()

    def views(self) -> dict[str, View]:
        return {entity_id: entity.view for entity_id, entity in self.entities.items()}

    def step(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Track every entity on the next frame: entity id -> equirectangular bool mask."""
        masks = {}
        for entity_id, entity in self.entities.items():
            entity.frame_index += 1
            image = self.sampler.sample(frame, entity.view)
            result = entity.tracker.step(image, entity.frame_index)[entity_id]
            mask = (
                self.sampler.mask_to_equirect(result.mask, entity.view)
                if result.present
                else np.zeros((self.sampler.eq_height, self.sampler.eq_width), dtype=bool)
            )
            masks[entity_id] = mask
            self._follow(entity, mask)
        return masks

    def _follow(self, entity: _Entity, mask: np.ndarray) -> None:
        box = mask_to_anglebox(mask)
        if box is None:
            return  # lost or occluded: keep looking where it was
        off = np.hypot(float(yaw_difference(box.yaw, entity.view.yaw)), box.pitch - entity.view.pitch)
        if off > self.recentre_deg:
            entity.view = entity.view.recentred(box.yaw, float(np.clip(box.pitch, -80.0, 80.0)))
