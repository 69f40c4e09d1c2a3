"""Geometry: conventions as hand-checked tables, round trips as properties, the seam everywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil360.edge import geometry as g
from vigil360.schema import AngleBox

W, H = 1920, 960


@pytest.mark.parametrize(
    ("x", "y", "yaw", "pitch"),
    [
        (W / 2, H / 2, 0.0, 0.0),  # straight ahead, on the horizon
        (0, H / 2, -180.0, 0.0),  # the seam: directly behind
        (3 * W / 4, H / 2, 90.0, 0.0),  # right
        (W / 4, H / 2, -90.0, 0.0),  # left
        (W / 2, 0, 0.0, 90.0),  # straight up
        (W / 2, H / 4, 0.0, 45.0),
    ],
)
def test_pixel_angle_conventions(x, y, yaw, pitch):
    got_yaw, got_pitch = g.pixel_to_angles(x, y, W, H)
    assert float(got_yaw) == pytest.approx(yaw)
    assert float(got_pitch) == pytest.approx(pitch)


@given(st.floats(0, W, exclude_max=True), st.floats(0, H))
def test_pixel_angles_round_trip(x, y):
    yaw, pitch = g.pixel_to_angles(x, y, W, H)
    x2, y2 = g.angles_to_pixel(yaw, pitch, W, H)
    # x is periodic: compare on the circle.
    assert min(abs(float(x2) - x), W - abs(float(x2) - x)) < 1e-6
    assert float(y2) == pytest.approx(y, abs=1e-6)


@given(st.floats(-180, 180, exclude_max=True), st.floats(-89.9, 89.9))
def test_angles_vector_round_trip(yaw, pitch):
    vec = g.angles_to_vector(yaw, pitch)
    assert np.linalg.norm(vec) == pytest.approx(1.0)
    yaw2, pitch2 = g.vector_to_angles(vec)
    assert abs(float(g.yaw_difference(yaw2, yaw))) < 1e-6
    assert float(pitch2) == pytest.approx(pitch, abs=1e-6)


def test_vector_axes():
    assert np.allclose(g.angles_to_vector(0, 0), [0, 0, 1])  # forward
    assert np.allclose(g.angles_to_vector(90, 0), [1, 0, 0])  # right
    assert np.allclose(g.angles_to_vector(0, 90), [0, 1, 0])  # up


@pytest.mark.parametrize(
    ("yaw", "hour"),
    [(30.0 * k, (k % 12) or 12) for k in range(-6, 7)]
    + [(14.9, 12), (15.1, 1), (-15.1, 11), (179.9, 6), (-179.9, 6), (-150, 7), (135.0, 4)],
)
def test_clock_hours(yaw, hour):
    assert int(g.clock_hour(yaw)) == hour


@given(st.integers(-12, 12))
def test_clock_hour_every_30_degrees(k):
    hour = int(g.clock_hour(30.0 * k))
    assert hour == (k % 12 or 12)


@pytest.mark.parametrize(
    ("yaw", "sector"),
    [(0, "center"), (59, "center"), (-60, "center"), (61, "right_back"), (179, "right_back"),
     (-179, "left_back"), (-61, "left_back")],
)
def test_sectors(yaw, sector):
    assert g.sector(yaw) == sector


@pytest.mark.parametrize(
    ("a", "b", "diff"), [(170, -170, -20), (-170, 170, 20), (10, -10, 20), (0, 180, -180), (-179, 179, 2)]
)
def test_yaw_difference_takes_the_short_way(a, b, diff):
    assert float(g.yaw_difference(a, b)) == pytest.approx(diff)


def test_ground_distance_at_45_degrees_equals_camera_height():
    d = g.ground_distance(-45.0, camera_height=1.2)
    assert d.metres == pytest.approx(1.2)
    assert 0 < d.sigma < 0.5


def test_ground_distance_uncertainty_grows_towards_the_horizon():
    near, far = g.ground_distance(-40.0), g.ground_distance(-8.0)
    assert far.metres > near.metres
    assert far.sigma / far.metres > near.sigma / near.metres
    assert math.isinf(g.ground_distance(0.0).metres)


def test_bearing_rate_unwraps_across_the_seam():
    times = np.arange(5) * 0.1
    yaws = g.wrap_yaw(170 + 50 * times)  # crosses +180 -> -180
    assert g.bearing_rate(yaws, times) == pytest.approx(50.0)


def _band_mask(yaw_centre: float, half_width: float, pitch_lo: float, pitch_hi: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    yaw, pitch = g.pixel_to_angles(xx, yy, W, H)
    return (np.abs(g.yaw_difference(yaw, yaw_centre)) <= half_width) & (pitch >= pitch_lo) & (pitch <= pitch_hi)


@pytest.mark.parametrize("centre", [-180.0, 179.0, -175.0, 0.0, 90.0])
def test_mask_box_is_seam_aware(centre):
    box = g.mask_to_anglebox(_band_mask(centre, 10.0, -20.0, 5.0))
    assert box is not None
    assert abs(float(g.yaw_difference(box.yaw, centre))) < 0.5
    assert box.width == pytest.approx(20.0, abs=0.6)
    assert box.pitch == pytest.approx(-7.5, abs=0.5)
    assert box.height == pytest.approx(25.0, abs=0.6)


def test_empty_mask_has_no_box():
    assert g.mask_to_anglebox(np.zeros((H, W), bool)) is None


def test_anglebox_iou_across_the_seam():
    a = AngleBox(yaw=178, pitch=0, width=10, height=10)
    b = AngleBox(yaw=-178, pitch=0, width=10, height=10)
    # 4 degrees apart across the seam: overlap 6 of 10 wide.
    assert g.anglebox_iou(a, b) == pytest.approx(60 / 140)
    assert g.anglebox_iou(a, AngleBox(yaw=0, pitch=0, width=10, height=10)) == 0.0


@given(st.lists(st.booleans(), min_size=8, max_size=64))
@settings(max_examples=200)
def test_occupied_span_covers_every_occupied_column(cols):
    cols = np.array(cols)
    span = g.occupied_yaw_span(cols)
    if not cols.any():
        assert span is None
        return
    start, length = span
    covered = (start + np.arange(length)) % cols.size
    assert set(np.flatnonzero(cols)) <= set(covered.tolist())
    assert cols[start] and cols[(start + length - 1) % cols.size]


@pytest.mark.parametrize("yaw", [-180.0 - 1e-14, 180.0, -180.0, 540.0, -1e-300, 179.99999999999997])
def test_wrap_yaw_stays_in_its_half_open_range(yaw: float) -> None:
    # -180 - 1e-14 rounds to +180 with a bare modulo; an AngleBox then refuses the yaw.
    wrapped = float(g.wrap_yaw(yaw))
    assert -180.0 <= wrapped < 180.0
