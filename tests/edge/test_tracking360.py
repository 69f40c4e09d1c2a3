"""Tracker360: per-entity views that follow the entity (across the seam), masks back in equirect pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vigil360.edge.geometry import angles_to_vector, pixel_to_angles
from vigil360.edge.tracking360 import Tracker360
from vigil360.schema import AngleBox

WIDTH, HEIGHT = 512, 256
RADIUS = 8.0  # degrees


def _disc(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Equirect mask of a spherical cap of RADIUS degrees around (yaw, pitch)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    yaws, pitches = pixel_to_angles(xx, yy, WIDTH, HEIGHT)
    cos = angles_to_vector(yaws, pitches) @ angles_to_vector(yaw, pitch)
    return cos >= np.cos(np.radians(RADIUS))


def _frame(mask: np.ndarray) -> np.ndarray:
    frame = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    frame[mask] = (230, 20, 20)
    return frame


@dataclass
class _Result:
    mask: np.ndarray
    score: float = 5.0

    @property
    def present(self) -> bool:
        return bool(self.mask.any())


class _RedTracker:
    """Test double with Sam2Tracker's interface: 'segments' the red pixels of each view image."""

    def __init__(self) -> None:
        self.ids: list = []
        self.boxes: list = []

    def spawn(self) -> _RedTracker:
        return _RedTracker()

    def add_object(self, obj_id, frame_index, box_xyxy=None, points=None, labels=None, frame=None):
        self.ids.append(obj_id)
        self.boxes.append(box_xyxy)
        return _Result(frame[..., 0] > 128)

    def step(self, frame, frame_index):
        return {obj_id: _Result(frame[..., 0] > 128) for obj_id in self.ids}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def test_entity_crossing_the_seam_is_followed() -> None:
    yaws = np.linspace(160.0, 200.0, 11)  # 160 .. 180 (the seam) .. -160
    tracker = Tracker360(_RedTracker(), WIDTH, HEIGHT, view_fov=60.0, view_size=96)
    first = tracker.add(
        "thief", _frame(_disc(160.0)), AngleBox(yaw=160.0, pitch=0.0, width=16.0, height=16.0)
    )
    assert _iou(first, _disc(160.0)) > 0.8
    for yaw in yaws[1:]:
        truth = _disc(float(yaw))
        masks = tracker.step(_frame(truth))
        assert masks["thief"].shape == (HEIGHT, WIDTH) and masks["thief"].dtype == bool
        assert _iou(masks["thief"], truth) > 0.8, yaw
    assert abs(tracker.views()["thief"].yaw - (-160.0)) < 5.0
    # Mask pixels sit on both sides of the seam while the disc straddles it.
    assert np.all(_disc(180.0)[:, [0, WIDTH - 1]].any(axis=0))


def test_a_view_that_does_not_follow_loses_the_entity() -> None:
    tracker = Tracker360(_RedTracker(), WIDTH, HEIGHT, view_fov=60.0, view_size=96, recentre_deg=1e9)
    tracker.add("thief", _frame(_disc(160.0)), AngleBox(yaw=160.0, pitch=0.0, width=16.0, height=16.0))
    for yaw in np.linspace(164.0, 200.0, 10):
        masks = tracker.step(_frame(_disc(float(yaw))))
    assert _iou(masks["thief"], _disc(-160.0)) < 0.2


def test_prompt_box_is_the_angle_box_seen_from_the_view() -> None:
    tracker = Tracker360(_RedTracker(), WIDTH, HEIGHT, view_fov=90.0, view_size=100)
    tracker.add("a", _frame(_disc(-179.0)), AngleBox(yaw=-179.0, pitch=0.0, width=20.0, height=20.0))
    x0, y0, x1, y1 = tracker.entities["a"].tracker.boxes[0]
    # centred; 20 deg of a 90 deg view of 100 px is about 2 * 50 * tan(10 deg) = 17.6 px
    assert abs((x0 + x1) / 2 - 50) < 1.0 and abs((y0 + y1) / 2 - 50) < 1.0
    assert 16.0 < x1 - x0 < 20.0


def test_big_entities_get_a_wider_view_and_removal_works() -> None:
    tracker = Tracker360(_RedTracker(), WIDTH, HEIGHT, view_fov=60.0, view_size=64)
    tracker.add("bus", _frame(_disc(0.0)), AngleBox(yaw=0.0, pitch=0.0, width=80.0, height=40.0))
    assert tracker.views()["bus"].fov == pytest.approx(120.0)
    tracker.remove("bus")
    assert tracker.step(_frame(_disc(0.0))) == {}


@pytest.mark.slow
def test_with_the_onnx_tracker(tmp_path_factory: pytest.TempPathFactory) -> None:
    from vigil360.export.sam2_cached import ensure_export
    from vigil360.models.sam2_tracker import Sam2Tracker

    out: Path = tmp_path_factory.getbasetemp() / "sam2_tiny_128"  # shared with the export tests
    ensure_export(out, image_size=128, seed=0)
    tracker = Tracker360(
        Sam2Tracker(out, providers="cpu", threads=2), WIDTH, HEIGHT, view_fov=60.0, view_size=128
    )
    tracker.add("thief", _frame(_disc(175.0)), AngleBox(yaw=175.0, pitch=0.0, width=16.0, height=16.0))
    for yaw in (178.0, -179.0):
        masks = tracker.step(_frame(_disc(yaw)))
        assert set(masks) == {"thief"} and masks["thief"].shape == (HEIGHT, WIDTH)
        assert masks["thief"].dtype == bool
