"""Gyro input (`vigil360 run --imu FILE`): the documented CSV, its failures, and its use by the ego stage."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from reflex_frames import textured_background

from vigil360.config import Settings
from vigil360.edge.reflex import ReflexPerception
from vigil360.edge.reflex.ego_motion import fit_motion
from vigil360.edge.reflex.imu import GyroTrack, ImuError
from vigil360.edge.run_cli import _attach_gyro
from vigil360.errors import UserError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imu.csv"
    path.write_text(text)
    return path


def test_a_constant_turn_integrates_to_its_angle(tmp_path: Path) -> None:
    rows = "\n".join(f"{t:.3f},0.5,30.0,-2.0" for t in np.arange(0, 2.0, 0.005))
    gyro = GyroTrack.from_csv(_write(tmp_path, "# a phone on the chest\ntime_s,gyro_x,gyro_y,gyro_z\n" + rows))
    rotation = np.degrees(gyro.rotation_between(0.4, 0.55))
    assert rotation == pytest.approx([0.075, 4.5, -0.3], abs=1e-6)


def test_rate_is_interpolated_between_sparse_samples(tmp_path: Path) -> None:
    gyro = GyroTrack.from_csv(_write(tmp_path, "time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n1,0,10,0\n"))
    # The rate ramps 0 -> 10 deg/s over a second: from 0.5 to 1.0 s the angle is the trapezoid 3.75 deg.
    assert np.degrees(gyro.rotation_between(0.5, 1.0))[1] == pytest.approx(3.75)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty IMU file"),
    ("t,x,y,z\n0,0,0,0\n", "header must start with time_s,gyro_x,gyro_y,gyro_z"),
    ("time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n0.1,0,zero,0\n", ":3: not four numbers"),
    ("time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n0.1,0,0\n", ":3: expected four finite numbers"),
    ("time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n0.1,0,nan,0\n", ":3: expected four finite numbers"),
    ("time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n", "at least two samples"),
    ("time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n0.2,0,0,0\n0.1,0,0,0\n", "sample times must increase"),
])
def test_bad_files_are_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ImuError, match=message):
        GyroTrack.from_csv(_write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImuError, match="cannot read"):
        GyroTrack.from_csv(tmp_path / "absent.csv")


def test_outside_its_samples_the_gyro_is_not_used(tmp_path: Path) -> None:
    gyro = GyroTrack.from_csv(_write(tmp_path, "time_s,gyro_x,gyro_y,gyro_z\n1,0,0,0\n2,0,0,0\n"))
    assert not gyro.covers(0.5, 1.2)
    with pytest.raises(ImuError, match="cover"):
        gyro.rotation_between(0.5, 1.2)


def test_with_a_gyro_only_the_direction_of_travel_is_fitted() -> None:
    rng = np.random.default_rng(1)
    p1 = rng.normal(size=(400, 3))
    p1 /= np.linalg.norm(p1, axis=1, keepdims=True)
    points = p1 * rng.uniform(2, 20, 400)[:, None]
    moved = points - np.array([0.0, 0.0, 0.2])  # 0.2 m straight ahead, no rotation at all
    p2 = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    gyro_rotation = np.radians([0.0, 0.0, 0.0])
    fit = fit_motion(p1, p2, known_rotation=gyro_rotation)
    assert np.array_equal(fit.omega, gyro_rotation)
    assert fit.translation is not None and fit.translation @ np.array([0, 0, 1.0]) > 0.99


def test_run_attaches_the_gyro_to_the_reflex_tier(tmp_path: Path) -> None:
    tier = ReflexPerception(256, 128, Settings())
    path = _write(tmp_path, "time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n10,0,0,0\n")
    _attach_gyro(SimpleNamespace(perception=tier), path)
    assert tier.gyro is not None and tier.gyro.times[-1] == 10
    # The tier then runs with it: a static scene, a gyro saying "still".
    frame = textured_background(1, 256, 128)
    for index in range(10):
        tier.process(frame, index / 10.0)
    assert tier.heading_deg == pytest.approx(0.0, abs=1e-9)


def test_run_reports_a_bad_imu_file_as_a_user_error(tmp_path: Path) -> None:
    tier = ReflexPerception(256, 128, Settings())
    with pytest.raises(UserError, match="imu.csv:1: header"):
        _attach_gyro(SimpleNamespace(perception=tier), _write(tmp_path, "a,b,c,d\n0,0,0,0\n"))
    with pytest.raises(UserError, match="takes no gyro"):
        good = _write(tmp_path, "time_s,gyro_x,gyro_y,gyro_z\n0,0,0,0\n1,0,0,0\n")
        _attach_gyro(SimpleNamespace(perception=object()), good)
