"""The generator's walking wearer (issue 12): gait, camera tilt, street parallax, exposure, suites."""

import numpy as np
import pytest

from vigil360.bench.synthetic import ScenarioSpec, ground_truth, render, suite_specs
from vigil360.bench.synthetic.camera import Exposure, camera_rotation, rotate_equirect
from vigil360.bench.synthetic.render import keep_off
from vigil360.bench.synthetic.scripts import PASSER_MIN_DISTANCE_M, Actor
from vigil360.bench.synthetic.sprites import Look
from vigil360.bench.synthetic.wearer import WearerMotion
from vigil360.bench.synthetic.world import Track
from vigil360.schema import Caption

SMALL = {"width": 240, "height": 120, "fps": 15.0, "duration_s": 4.0}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_walking_gait_has_the_published_ranges(seed: int) -> None:
    motion = WearerMotion.draw("walking", np.random.default_rng(seed), 1.5, 0.0, 10.0)
    times = np.linspace(0, 4, 801)
    poses = [motion.pose(float(t)) for t in times]
    z = np.array([p.z for p in poses])
    speed = np.gradient(z, times)
    assert 0.5 <= speed.mean() <= 1.6
    heights = np.array([p.height_m for p in poses])
    assert 0.02 <= heights.max() - heights.min() <= 0.04  # vertical bob, peak to peak
    for angle in ("pitch", "roll"):
        values = np.array([getattr(p, angle) for p in poses])
        assert 1.0 <= values.max() - values.min() <= 3.0
    # The bob is at the step frequency (1.8-2 Hz): count its peaks.
    rising = np.flatnonzero(np.diff(np.sign(heights - heights.mean())) > 0)
    assert 1.7 * 4 - 1 <= rising.size <= 2.0 * 4 + 1


def test_mixed_wearer_stops_and_looks_round() -> None:
    motion = WearerMotion.draw("mixed", np.random.default_rng(7), 1.5, 0.0, 10.0)
    assert motion.stop is not None
    start, end = motion.stop
    middle = (start + end) / 2
    assert motion.pose(middle + 0.05).z == pytest.approx(motion.pose(middle).z, abs=1e-6)
    assert abs(motion.pose(middle).yaw) > 15.0
    assert motion.pose(end + 2.0).z > motion.pose(end).z + 0.5


def test_camera_tilt_rotation_round_trips() -> None:
    rng = np.random.default_rng(0)
    image = np.repeat(np.repeat(rng.integers(0, 255, (30, 60, 3), dtype=np.uint8), 8, 0), 8, 1)
    rotation = camera_rotation(2.0, -1.5)
    back = rotate_equirect(rotate_equirect(image, rotation), rotation.T)
    band = slice(60, 180)  # away from the poles, where a round trip resamples heavily
    assert np.mean(np.abs(back[band].astype(int) - image[band].astype(int))) < 12


def test_walking_wearer_closes_on_a_standing_person_at_walking_speed() -> None:
    spec = ScenarioSpec(kind="standstill", seed=3, wearer="walking", walk_speed_mps=1.2, bystanders=0, **SMALL)
    _, scenario = ground_truth(spec)
    person = scenario.actor("standing0")
    assert person.is_distractor
    first, last = person.distance_m[0], person.distance_m[-1]
    elapsed = (person.frames[-1] - person.frames[0]) / spec.fps
    # Closing at most the walking speed (less once level with them), never more.
    assert 0 < first - last <= 1.2 * elapsed + 0.05
    # The wearer moved along the street, with the gait's height changes recorded.
    zs = [pose[1] for pose in scenario.wearer_pose]
    heights = [pose[2] for pose in scenario.wearer_pose]
    assert zs[-1] - zs[0] == pytest.approx(1.2 * (spec.num_frames - 1) / spec.fps, rel=0.02)
    assert max(heights) - min(heights) > 0.015


def test_wearer_anchored_thief_matches_pace_while_the_world_streams_past() -> None:
    spec = ScenarioSpec(kind="stealing", seed=4, wearer="walking", bystanders=0, **SMALL)
    standing = ScenarioSpec(kind="stealing", seed=4, bystanders=0, **SMALL)
    walking_truth = ground_truth(spec)[1].actor("perpetrator").distance_m
    standing_truth = ground_truth(standing)[1].actor("perpetrator").distance_m
    # Relative to the wearer the thief does the same thing whether the wearer walks or not.
    assert walking_truth == pytest.approx(standing_truth, abs=1e-3)


def test_street_frames_change_with_walking_even_without_movers() -> None:
    spec = ScenarioSpec(kind="bystander", seed=2, wearer="walking", bystanders=0, noise_sigma=0.0, **SMALL)
    clip = render(spec)
    ground = slice(90, 120)  # rows below the horizon: the paving streams past
    difference = np.abs(clip.frames[10, ground].astype(int) - clip.frames[0, ground].astype(int)).mean()
    assert difference > 3.0
    assert all(not actor.frames for actor in clip.scenario.actors)


def test_auto_exposure_steps_scale_the_whole_frame() -> None:
    exposure = Exposure.draw(np.random.default_rng(5), 10.0)
    assert exposure.step_times
    when, step = exposure.step_times[0], exposure.step_gains[0]
    assert 0.8 <= step <= 1.25 and abs(step - 1.0) >= 0.1
    ratio = exposure.gain(when + 0.2) / exposure.gain(when - 0.01)
    assert ratio == pytest.approx(step, rel=0.02)


def test_walking_suite_draws_camera_heights_and_walking_kinds() -> None:
    specs = suite_specs(12, seed=0, wearer="walking", width=240, height=120)
    heights = {spec.camera_height_m for spec in specs}
    assert all(0.9 <= h <= 1.8 for h in heights) and len(heights) > 6
    assert {"overtake", "standstill", "alongside", "reversing"} <= {spec.kind for spec in specs}
    assert all(spec.street and spec.exposure == "auto" for spec in specs)


def test_a_walking_wearer_cannot_use_the_courtyard() -> None:
    with pytest.raises(ValueError, match="street"):
        ScenarioSpec(kind="bystander", wearer="walking", world="courtyard", **SMALL)


@pytest.mark.parametrize("fps", [10.0, 15.0, 24.0, 30.0, 60.0])
def test_frame_rates_keep_time(fps: float) -> None:
    spec = ScenarioSpec(kind="overtake", seed=1, wearer="walking", bystanders=0, width=64, height=32, fps=fps,
                        duration_s=2.0)
    _, scenario = ground_truth(spec)
    assert scenario.num_frames == round(2.0 * fps)
    zs = [pose[1] for pose in scenario.wearer_pose]
    assert (zs[-1] - zs[0]) / ((scenario.num_frames - 1) / fps) == pytest.approx(
        (zs[1] - zs[0]) * fps, rel=0.2)


def test_an_exposure_step_lands_the_asked_time_before_the_alert_is_due() -> None:
    from vigil360.bench.reflex_bench import APPROACH_RADIUS_M, LEAD_S
    from vigil360.bench.synthetic.render import ALERT_LEAD_S, _Renderer
    from vigil360.bench.synthetic.render import APPROACH_RADIUS_M as RENDER_RADIUS_M

    assert (ALERT_LEAD_S, RENDER_RADIUS_M) == (LEAD_S, APPROACH_RADIUS_M)  # one criterion, bench and generator
    spec = ScenarioSpec(kind="stealing", seed=4, exposure_step_before_alert_s=1.5, exposure_step_gain=0.8,
                        **{**SMALL, "duration_s": 10.0})
    _, scenario = ground_truth(spec)
    within = min(actor.first_frame_within(APPROACH_RADIUS_M) for actor in scenario.actors
                 if not actor.is_distractor and actor.first_frame_within(APPROACH_RADIUS_M) is not None)
    renderer = _Renderer(spec)
    step = within / spec.fps - LEAD_S - 1.5
    assert renderer.exposure.step_times == pytest.approx((step,), abs=1.0 / spec.fps)
    # The whole frame darkens by a fifth across the step (noise off, so only the gain differs).
    quiet = spec.model_copy(update={"noise_sigma": 0.0})
    frames = render(quiet).frames
    before, after = (frames[int(round(t * spec.fps))].astype(float) for t in (step - 0.1, step + 0.3))
    bright = before > 40
    assert np.median(after[bright] / before[bright]) == pytest.approx(0.8, abs=0.03)


def test_suites_put_exposure_steps_only_where_asked() -> None:
    plain = suite_specs(6, seed=9, width=240, height=120)
    stepped = suite_specs(6, seed=9, width=240, height=120, exposure_step=True)
    assert all(spec.exposure_step_before_alert_s is None for spec in plain)
    assert all(1.0 <= spec.exposure_step_before_alert_s <= 2.0 for spec in stepped)
    assert {spec.exposure_step_gain for spec in stepped} <= {0.8, 1.2}
    # Otherwise the same clips.
    assert [s.model_copy(update={"exposure_step_before_alert_s": None, "exposure_step_gain": 1.2}) for s in stepped] \
        == plain


def test_a_backdrop_must_be_a_known_photograph() -> None:
    with pytest.raises(ValueError, match="backdrop"):
        ScenarioSpec(kind="bystander", backdrop="moon", **SMALL)


def test_a_photograph_backdrop_has_no_parallax_but_the_street_near_the_wearer_has() -> None:
    """Walking on a photo world: above the horizon the frame is the photograph and a step forward does not
    move it; the paving near the feet does move."""
    from vigil360.bench.real_imagery import RealImageryUnavailable, load_hdri
    from vigil360.bench.synthetic.street import Street

    try:
        photo = load_hdri("city", 240)
    except RealImageryUnavailable as error:
        pytest.skip(f"real photographs unavailable: {error}")
    street = Street.draw(np.random.default_rng(3))
    street.backdrop = photo
    here = street.render(240, 120, 0.0, 0.0, 1.5, 0.0).astype(float)
    ahead = street.render(240, 120, 0.0, 0.3, 1.5, 0.0).astype(float)
    sky = slice(0, 55)  # pitch above +7.5 deg: nothing of the street reaches there without facades
    assert np.abs(here[sky] - photo[sky]).mean() < 2.0
    assert np.abs(ahead[sky] - here[sky]).mean() < 0.5
    feet = slice(90, 110)
    assert np.abs(ahead[feet] - here[feet]).mean() > 5.0


def _passer_across_the_walk(street_z: float) -> Actor:
    # Crosses the street at `street_z` at 1.2 m/s, passing x = 0 at t = 3 s.
    track = Track(np.array([0.0, 10.0]), np.array([-3.6, 8.4]), np.array([street_z, street_z]))
    return Actor("bystander0", Look("person", 1.75, "red", "blue"), track, "person",
                 Caption(appearance="a person", motion="walks past"), anchor="world",
                 keep_off_m=PASSER_MIN_DISTANCE_M)


@pytest.mark.parametrize("mode", ["walking", "mixed"])
def test_a_passer_by_keeps_its_distance_from_a_walking_wearer(mode: str) -> None:
    wearer = WearerMotion.draw(mode, np.random.default_rng(3), 1.5, 4.0, 8.0, speed_mps=1.3)
    passer = _passer_across_the_walk(wearer.pose(3.0).z)  # where the wearer is at 3 s
    times = np.arange(0.0, 8.0, 0.01)
    walk = np.array([[wearer.pose(float(t)).x, wearer.pose(float(t)).z] for t in times])

    def closest(actor) -> float:
        x, z, _ = actor.track.position(times)
        return float(np.min(np.hypot(x - walk[:, 0], z - walk[:, 1])))

    assert closest(passer) < 1.0  # as drawn, it walks into the wearer
    kept = keep_off(passer, wearer, 8.0)
    assert closest(kept) >= passer.keep_off_m - 0.01
    # Moved, not re-scripted: the same times, speed and heading.
    np.testing.assert_allclose(np.diff(kept.track.x), np.diff(passer.track.x))
    np.testing.assert_allclose(np.diff(kept.track.z), np.diff(passer.track.z))


def test_a_standing_wearers_passers_by_are_left_as_drawn() -> None:
    passer = _passer_across_the_walk(0.0)
    wearer = WearerMotion.draw("standing", np.random.default_rng(3), 1.5, 4.0, 8.0)
    assert keep_off(passer, wearer, 8.0) is passer


def test_no_bystander_of_a_walking_suite_comes_nearer_than_promised() -> None:
    # Seed 2's look-alike clip: before the renderer held passers off the walk, "lookalike0" came to 0.5 m.
    spec = next(s for s in suite_specs(10, 2, width=240, height=120, duration_s=8.0, fps=10.0, wearer="walking")
                if s.kind == "lookalikes")
    _, scene = ground_truth(spec)
    passers = [actor for actor in scene.actors if actor.actor_id.startswith(("lookalike", "bystander"))]
    assert passers
    assert min(min(actor.distance_m) for actor in passers) >= PASSER_MIN_DISTANCE_M - 0.05
