"""Perspective views: forward sampling and the exact inverse for masks, seam included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil360.edge import geometry as g
from vigil360.edge.views import View, ViewSampler, horizon_tiles

W, H = 960, 480


def _blob(yaw_c: float, pitch_c: float, radius_deg: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    yaw, pitch = g.pixel_to_angles(xx, yy, W, H)
    centre = g.angles_to_vector(yaw_c, pitch_c)
    cos = g.angles_to_vector(yaw, pitch) @ centre
    return cos >= np.cos(np.radians(radius_deg))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@given(
    st.floats(-180, 180, exclude_max=True),
    st.floats(-30, 30),
    st.floats(3, 15),
    st.floats(-20, 20),
)
@settings(max_examples=25, deadline=None)
def test_view_round_trip_reproduces_the_mask(yaw, pitch, radius, offset):
    """A mask seen through a view and mapped back keeps IoU >= 0.98 (seam included)."""
    mask = _blob(yaw, pitch, radius)
    view = View(yaw=float(g.wrap_yaw(yaw + offset)), pitch=pitch / 2, fov=100, width=640, height=640)
    sampler = ViewSampler(W, H)
    in_view = sampler.sample(mask, view, cv2.INTER_NEAREST)
    back = sampler.mask_to_equirect(in_view, view)
    assert _iou(mask, back) >= 0.98


def test_seam_view_sees_both_sides():
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, : W // 2] = (255, 0, 0)  # left half of the panorama: yaw in [-180, 0)
    frame[:, W // 2 :] = (0, 0, 255)
    view = View(yaw=-180.0, fov=90, width=200, height=200)
    image = ViewSampler(W, H).sample(frame, view, cv2.INTER_NEAREST)
    # Looking backwards, the wearer's right (positive yaw, red channel here) appears on the view's left.
    assert (image[:, :90, 2] == 255).all()
    assert (image[:, 110:, 0] == 255).all()


def test_view_centre_pixel_looks_at_the_view_direction():
    view = View(yaw=123.0, pitch=-10.0, fov=70, width=101, height=101)
    yaw, pitch = view.view_pixel_to_angles(np.array([50.0]), np.array([50.0]))
    assert float(yaw[0]) == pytest.approx(123.0, abs=1e-6)
    assert float(pitch[0]) == pytest.approx(-10.0, abs=1e-6)


def test_box_to_angles_of_the_whole_view_is_its_field_of_view():
    view = View(yaw=179.0, fov=60, width=300, height=300)
    yaw, pitch, width, height = ViewSampler(W, H).box_to_angles(view, (0, 0, 300, 300))
    assert abs(float(g.yaw_difference(yaw, 179.0))) < 1e-6
    assert width == pytest.approx(60.0, abs=1e-6)
    assert pitch == pytest.approx(0.0, abs=1e-6)


def test_horizon_tiles_cover_the_horizon_and_start_behind():
    tiles = horizon_tiles(4, 120)
    assert tiles[0].yaw == -180.0
    yaws = np.arange(-180, 180, 1.0)
    covered = [any(abs(float(g.yaw_difference(y, t.yaw))) <= t.fov / 2 for t in tiles) for y in yaws]
    assert all(covered)
    with pytest.raises(ValueError, match="do not cover"):
        horizon_tiles(2, 90)


@pytest.mark.parametrize(("w", "h"), [(1000, 480), (480, 480)])
def test_sampler_refuses_non_equirect_sizes(w, h):
    with pytest.raises(ValueError, match="2:1"):
        ViewSampler(w, h)


def test_matches_py360convert_e2p():
    """Our cached-map sampler agrees with py360convert's e2p on a smooth image."""
    py360convert = pytest.importorskip("py360convert")
    yy, xx = np.mgrid[0:H, 0:W]
    yaw, pitch = g.pixel_to_angles(xx, yy, W, H)
    smooth = (127 + 60 * np.sin(np.radians(yaw) * 3) * np.cos(np.radians(pitch) * 2)).astype(np.float64)
    image = np.dstack([smooth] * 3)
    view = View(yaw=40.0, pitch=10.0, fov=90, width=256, height=256)
    ours = ViewSampler(W, H).sample(image.astype(np.float32), view)[..., 0]
    theirs = py360convert.e2p(image, fov_deg=90, u_deg=40.0, v_deg=10.0, out_hw=(256, 256), mode="bilinear")[..., 0]
    assert np.abs(ours - theirs).mean() < 1.5
