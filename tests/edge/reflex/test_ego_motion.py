"""Ego-motion on the sphere (issue 12): rotation, direction of travel, residual motion.

Real photographs (Debian blender-data HDRIs) are rotated by known amounts; the textured street
(a procedural world, used here as a world only) gives parallax for the direction of travel.
"""

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vigil360.bench.synthetic.camera import rotate_equirect
from vigil360.bench.synthetic.street import Street
from vigil360.edge.reflex.ego_motion import EgoMotion, SphereFlowField, fit_motion, residual_motion

W, H = 480, 240


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@pytest.fixture(scope="module")
def photographs() -> dict[str, np.ndarray]:
    from vigil360.bench.real_imagery import RealImageryUnavailable, load_hdri

    try:
        return {name: _grey(load_hdri(name, W)) for name in ("city", "courtyard", "forest", "interior")}
    except RealImageryUnavailable as error:
        pytest.skip(f"real photographs unavailable: {error}")


def _camera_turned(image: np.ndarray, omega_deg: tuple[float, float, float]) -> np.ndarray:
    """What the camera sees after turning by the rotation vector omega (camera axes)."""
    return rotate_equirect(image, Rotation.from_rotvec(np.radians(omega_deg)).as_matrix())


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [
    (2.0, 0.0, 0.0), (-1.5, 1.0, 0.8), (0.5, -2.0, 1.5), (0.3, 0.2, -0.3), (4.0, 1.5, -2.5),
])
def test_rotation_is_recovered_within_a_third_of_a_degree_on_real_photographs(photographs, yaw, pitch, roll):
    # yaw right = omega_y, pitch up = -omega_x, roll right-side-down = -omega_z
    omega = (-pitch, yaw, -roll)
    for name, image in photographs.items():
        ego = EgoMotion(W, H, camera_height_m=1.5)
        ego.update(image)
        step = ego.update(_camera_turned(image, omega))
        assert step is not None
        fit = step.fit
        assert (fit.yaw_deg, fit.pitch_deg, fit.roll_deg) == pytest.approx((yaw, pitch, roll), abs=0.3), name
        # A turn must not read as walking: whatever direction flow noise suggests, the metric step is ~0.
        assert step.metres_per_step < 0.02, f"{name}: a pure rotation read as travel"


@pytest.mark.parametrize(("heading_deg", "step_m"), [(0.0, 0.05), (30.0, 0.15), (-120.0, 0.1), (90.0, 0.05)])
def test_direction_of_travel_within_ten_degrees_on_a_textured_street(heading_deg, step_m):
    street = Street.draw(np.random.default_rng(1))
    before = street.render(W, H, 0.0, 0.0, 1.5, 0.0)
    d = np.radians(heading_deg)
    after = street.render(W, H, step_m * np.sin(d), step_m * np.cos(d), 1.5, 0.0)
    after = _camera_turned(after, (0.4, -0.5, 0.3))  # the head sways while walking
    ego = EgoMotion(W, H, camera_height_m=1.5)
    ego.update(_grey(before))
    step = ego.update(_grey(after))
    assert step is not None and step.fit.translation is not None
    truth = np.array([np.sin(d), 0.0, np.cos(d)])
    error = np.degrees(np.arccos(np.clip(step.fit.translation @ truth, -1, 1)))
    assert error < 10.0
    assert np.degrees(step.fit.omega) == pytest.approx([0.4, -0.5, 0.3], abs=0.3)
    # The ground's own flow and the camera height give the metric step.
    assert step.metres_per_step == pytest.approx(step_m, rel=0.25)


def _random_bearings(rng: np.random.Generator, n: int) -> np.ndarray:
    p = rng.normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


@pytest.mark.parametrize(("omega_deg", "travel"), [
    ((0.5, -0.3, 0.8), (0.1, 0.0, 1.0)),
    ((0.2, 1.5, -0.4), (0.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.3, 0.0, -1.0)),
])
def test_fit_ignores_a_tenth_of_the_points_moving_on_their_own(omega_deg, travel):
    rng = np.random.default_rng(0)
    p1 = _random_bearings(rng, 600)
    points = p1 * rng.uniform(2, 30, 600)[:, None]
    rotation = Rotation.from_rotvec(np.radians(omega_deg)).as_matrix()
    step = np.array(travel) * 0.2  # a 0.15 s step at a brisk walk
    moved = (points - step) @ rotation
    p2 = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    p2[:60] += rng.normal(scale=0.01, size=(60, 3))  # movers
    p2 /= np.linalg.norm(p2, axis=1, keepdims=True)
    fit = fit_motion(p1, p2)
    assert np.degrees(fit.omega) == pytest.approx(omega_deg, abs=0.02)
    if any(travel):
        assert fit.translation is not None
        cosine = fit.translation @ step / np.linalg.norm(step)
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))) < 2.0
    else:
        assert fit.translation is None


def test_fit_refuses_too_few_or_mismatched_points():
    with pytest.raises(ValueError, match="at least 8"):
        fit_motion(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="N x 3"):
        fit_motion(np.zeros((10, 3)), np.zeros((10, 2)))


def test_the_residual_on_some_rows_is_the_whole_frame_residual_there():
    """The tier asks for the residual on the walking band's rows only (the per-pixel tests cost in proportion
    to the rows): those rows must read as they do in the whole-frame residual, to float32 rounding (numpy's
    vector loops may round an element at an array's ends by another path, one ulp apart, as memory alignment
    falls), and give the same moving pixels."""
    street = Street.draw(np.random.default_rng(1))
    before = _grey(street.render(W, H, 0.0, 0.0, 1.5, 0.0))
    after = _grey(_camera_turned(street.render(W, H, 0.0, 0.1, 1.5, 0.0), (0.2, -0.5, 0.1)))
    rows = (67, 187)
    ego = EgoMotion(W, H, camera_height_m=1.5, residual_rows=rows)
    ego.update(before)
    step = ego.update(after)
    assert step is not None and step.flow is not None and step.fit.translation is not None
    band = ego.residual(step)
    whole = residual_motion(step.flow, step.fit, SphereFlowField(W, H), 1.5, scale=step.metres_per_step)
    assert band.first_row == rows[0] and band.magnitude.shape == (rows[1] - rows[0], W)
    same_rows = whole.magnitude[rows[0]:rows[1]]
    np.testing.assert_allclose(band.magnitude, same_rows, rtol=1e-6, atol=1e-6)
    decided = np.abs(same_rows) > 1e-6
    np.testing.assert_array_equal((band.magnitude > 0)[decided], (same_rows > 0)[decided])
    assert decided.mean() > 0.999
    assert band.metres_per_step == whole.metres_per_step == step.metres_per_step
    with pytest.raises(ValueError, match="field of shape"):
        residual_motion(step.flow, step.fit, ego.residual_field, 1.5, scale=step.metres_per_step)


def test_ego_motion_rejects_a_frame_of_the_wrong_size():
    ego = EgoMotion(W, H, camera_height_m=1.5)
    with pytest.raises(ValueError, match="grey frames"):
        ego.update(np.zeros((H, W + 2), np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_a_static_street_walked_through_proposes_nothing(seed: int) -> None:
    """Walking with gait sway, auto-exposure steps and sensor noise through a street with no movers: the
    residual motion proposes no region at all once walking is recognised (the generator is the world
    here; nothing is asserted against its tables)."""
    from vigil360.bench.synthetic import ScenarioSpec, iter_frames
    from vigil360.config import Settings
    from vigil360.edge.reflex import ReflexPerception

    spec = ScenarioSpec(kind="bystander", seed=seed, wearer="walking", walk_speed_mps=1.3, bystanders=0, width=W,
                        height=H, fps=15.0, duration_s=4.0, exposure="auto", noise_sigma=2.0)
    tier = ReflexPerception(W, H, Settings())
    walking_frames, tracked = 0, []
    for index, image in enumerate(iter_frames(spec)):
        tracks = tier.process(image, index / spec.fps)
        walking_frames += tier.walking
        if tier.walking:
            tracked += [track.track_id for track in tracks]
    assert walking_frames >= 0.7 * spec.num_frames
    assert tracked == []


def _fit_with_movers(before: np.ndarray, after: np.ndarray, crowd: np.ndarray):
    """The ego step between two frames after patches of `crowd` (another real photograph) are pasted over a
    third of the horizon band (+-22 deg) of both, each moving 4 px right and 2 down between them."""
    rows = slice(H // 2 - 30, H // 2 + 30)
    for start in range(0, W // 3, 40):
        columns = slice(start, start + 30)
        before[rows, columns] = crowd[rows, columns]
        after[rows, columns] = np.roll(crowd, (2, 4), axis=(0, 1))[rows, columns]
    ego = EgoMotion(W, H, camera_height_m=1.5)
    ego.update(before)
    return ego.update(after)


def test_movers_over_a_third_of_the_horizon_band_do_not_drag_the_rotation(photographs):
    """People crossing a textured third of the view (here: patches of another real photograph, moving
    their own way) must not pull the camera's rotation: the robust fit leaves them out."""
    scene, crowd = photographs["city"], photographs["forest"]
    omega = (0.3, 1.2, -0.4)  # camera axes, degrees
    before, after = scene.copy(), _camera_turned(scene, omega)
    step = _fit_with_movers(before, after, crowd)
    assert step is not None
    assert np.degrees(step.fit.omega) == pytest.approx(omega, abs=0.3)


@pytest.mark.parametrize("name", ["forest", "city"])
def test_a_walk_is_seen_where_only_the_ground_is_near(name: str) -> None:
    """An open square: paving out to 30 m, everything else a real photograph at infinity (no parallax).
    Most textured points are far, so their median flow is a pure rotation; the ground alone shows the walk."""
    from vigil360.bench.real_imagery import RealImageryUnavailable, load_hdri

    try:
        photo = load_hdri(name, W)
    except RealImageryUnavailable as error:
        pytest.skip(f"real photographs unavailable: {error}")
    street = Street.draw(np.random.default_rng(4))
    street.backdrop = photo
    before = street.render(W, H, 0.0, 0.0, 1.5, 0.0)
    after = _camera_turned(street.render(W, H, 0.0, 0.15, 1.5, 0.0), (0.3, -0.4, 0.2))
    ego = EgoMotion(W, H, camera_height_m=1.5)
    ego.update(_grey(before))
    step = ego.update(_grey(after))
    assert step is not None and step.fit.translation is not None
    assert np.degrees(np.arccos(np.clip(step.fit.translation[2], -1, 1))) < 10.0
    assert step.metres_per_step == pytest.approx(0.15, rel=0.25)


@pytest.mark.parametrize("omega", [(0.3, -0.4, 0.2), (-0.6, 1.5, 0.5)])
def test_movers_over_a_third_of_the_band_do_not_drag_a_walking_wearers_rotation(photographs, omega):
    """The issue's heading line while walking, not only turning: a 0.15 m step down a street whose distance is a
    real photograph, the head swaying, and patches of another real photograph moving their own way over a third
    of the horizon band. The rotation the heading integrates stays within 0.3 deg (measured: 0.29 deg worst, roll,
    against 0.02 deg without the movers: they do pull it, and this is the line), and the walk is still seen
    (its direction 4.6-10.3 deg off, against 0.3-1.3 deg without them: BENCHMARKS.md)."""
    from vigil360.bench.real_imagery import load_hdri

    street = Street.draw(np.random.default_rng(4))
    street.backdrop = load_hdri("city", W)
    crowd = photographs["forest"]
    before = _grey(street.render(W, H, 0.0, 0.0, 1.5, 0.0))
    after = _grey(_camera_turned(street.render(W, H, 0.0, 0.15, 1.5, 0.0), omega))
    step = _fit_with_movers(before, after, crowd)
    assert step is not None and step.fit.translation is not None
    assert np.degrees(step.fit.omega) == pytest.approx(omega, abs=0.3)
    assert step.metres_per_step == pytest.approx(0.15, rel=0.25)
