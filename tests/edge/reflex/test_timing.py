"""Every rule of the reflex tier in seconds (issue 12): the same physics gives the same decision at
10, 30 and 60 fps, and a rate below 10 fps is announced, not silently degraded."""

import logging

import numpy as np
import pytest
from reflex_frames import HEIGHT, WIDTH, textured_background

from vigil360.config import ReflexConfig, Settings
from vigil360.edge.geometry import Distance
from vigil360.edge.reflex import ReflexPerception
from vigil360.edge.reflex.motion import MotionProposer, Region
from vigil360.edge.reflex.risk import assess
from vigil360.edge.reflex.tracker import AngleTracker, Observation
from vigil360.schema import AngleBox

CAMERA_M = 1.5
RATES = [10.0, 30.0, 60.0]


def _observations(fps: float, start: tuple[float, float], velocity: tuple[float, float], seconds: float = 1.0,
                  wearer_velocity: tuple[float, float] = (0.0, 0.0)) -> list[Observation]:
    """An upright 1.75 m entity seen from a wearer who walks at `wearer_velocity`; the entity's
    position relative to the wearer starts at `start` and moves at `velocity` (relative)."""
    out = []
    for i in range(int(round(seconds * fps))):
        t = i / fps
        x, z = start[0] + velocity[0] * t, start[1] + velocity[1] * t
        distance = float(np.hypot(x, z))
        yaw = float(np.degrees(np.arctan2(x, z)))
        contact = float(np.degrees(np.arctan2(-CAMERA_M, distance)))
        top = float(np.degrees(np.arctan2(1.75 - CAMERA_M, distance)))
        width = float(np.degrees(2 * np.arctan2(0.25, distance)))
        box = AngleBox(yaw=yaw, pitch=(top + contact) / 2, width=width, height=top - contact)
        out.append(Observation(t, box, contact, top, Distance(distance, 0.03 * distance), 0.0, None,
                               wearer_velocity[0] * t, wearer_velocity[1] * t))
    return out


@pytest.mark.parametrize("fps", RATES)
def test_an_approach_from_behind_is_flagged_at_every_rate(fps: float) -> None:
    risk = assess(_observations(fps, (0.3, -5.5), (0.0, 1.4)), ReflexConfig())
    assert risk.risk >= 0.5 and risk.reason == "approaching fast"
    assert risk.time_to_zone_s == pytest.approx((5.5 - 1.4 - 1.5) / 1.4, abs=0.3)


@pytest.mark.parametrize("fps", RATES)
def test_too_short_a_history_gives_no_risk_at_any_rate(fps: float) -> None:
    # 0.3 s of a fast approach: under `min_fit_s`, whatever the number of frames.
    assert assess(_observations(fps, (0.3, -4.0), (0.0, 3.0), seconds=0.3), ReflexConfig()).risk == 0.0


@pytest.mark.parametrize("fps", RATES)
def test_walking_up_to_someone_standing_still_is_not_an_approach(fps: float) -> None:
    # The wearer walks at 1.3 m/s toward a person standing 1 m off their path: the range closes at
    # walking pace, but the person does not move over the ground.
    walking = (0.0, 1.3)
    seen = _observations(fps, (1.0, 5.5), (0.0, -1.3), wearer_velocity=walking)
    assert assess(seen, ReflexConfig()).risk < 0.5
    # The same relative motion from someone who really walks at the wearer is flagged.
    assert assess(_observations(fps, (1.0, 5.5), (0.0, -1.3)), ReflexConfig()).risk >= 0.5


@pytest.mark.parametrize("fps", RATES)
def test_a_walker_passed_at_twice_walking_pace_is_not_fast(fps: float) -> None:
    # Both walk at 1.4 m/s in opposite directions, 2 m apart: 2.8 m/s relative, 1.4 m/s over ground.
    seen = _observations(fps, (2.0, 4.0), (0.0, -2.8), wearer_velocity=(0.0, 1.4))
    assert assess(seen, ReflexConfig()).risk < 0.5


@pytest.mark.parametrize("fps", RATES)
def test_one_bad_contact_row_behind_is_outvoted_at_every_rate(fps: float) -> None:
    # Someone standing 1.9 m behind; one frame's contact reads 1.0 m (a shadow, a foot). A flag needs two
    # frames in a row at the threshold, so neither the window ending on that frame nor the next may reach it.
    standing = _observations(fps, (0.3, -1.9), (0.0, 0.0))
    stepped_in = _observations(fps, (0.3, -1.0), (0.0, 0.0))
    last = len(standing) - 1
    for bad in (last, last - 1):
        seen = standing[:bad] + [stepped_in[bad]] + standing[bad + 1:]
        assert assess(seen, ReflexConfig(), farthest_m=1.9).risk < 0.5
    # Someone who really stands within the zone is close behind you at every rate.
    risk = assess(stepped_in, ReflexConfig(), farthest_m=1.9)
    assert (risk.reason, risk.risk >= 0.5) == ("close behind you", True)


@pytest.mark.parametrize("fps", RATES)
def test_a_fit_on_three_usable_samples_is_not_trusted_at_any_rate(fps: float) -> None:
    # Someone standing 7.2 m behind whose ground contact is lost (reads 25 m) but for the last 0.2 s, where
    # it steps down one row (7.2 -> 6.7 m). At 10 fps that leaves three usable samples: a Theil-Sen line
    # through three passes through two, so their scatter (and the speed's error) reads zero.
    far = _observations(fps, (0.3, -25.0), (0.0, 0.0))
    standing = _observations(fps, (0.3, -7.2), (0.0, 0.0))
    one_row_nearer = _observations(fps, (0.3, -6.7), (0.0, 0.0))
    end = standing[-1].time_s
    seen = [lost if obs.time_s < end - 0.2 - 1e-9 else (obs if obs.time_s < end - 0.05 else near)
            for lost, obs, near in zip(far, standing, one_row_nearer, strict=True)]
    assert assess(seen, ReflexConfig()).risk < 0.5


def _region(yaw: float) -> Region:
    box = AngleBox(yaw=yaw, pitch=-2.0, width=4.0, height=8.0)
    return Region(np.zeros((2, 2), dtype=bool), box, 32.0, -6.0, 2.0, Distance(8.0, 0.5))


@pytest.mark.parametrize("fps", RATES)
def test_a_track_coasts_for_the_same_time_at_every_rate(fps: float) -> None:
    config = ReflexConfig(max_missed_s=0.34)
    tracker = AngleTracker(config)
    frame = 0
    for _ in range(int(0.5 * fps)):
        tracker.step([_region(30.0)], frame / fps)
        frame += 1
    alive = []
    for _ in range(int(0.6 * fps)):
        tracker.step([], frame / fps)
        alive.append(bool(tracker.tracks))
        frame += 1
    coasted = sum(alive) / fps
    assert 0.34 - 1.0 / fps - 1e-9 <= coasted <= 0.34 + 1e-9


@pytest.mark.parametrize("fps", RATES)
def test_a_track_is_reported_after_the_same_time_at_every_rate(fps: float) -> None:
    tracker = AngleTracker(ReflexConfig(min_track_s=0.1))
    reported_at = None
    for frame in range(int(fps)):
        if tracker.step([_region(30.0)], frame / fps) and reported_at is None:
            reported_at = frame / fps
    assert reported_at is not None
    assert 0.1 - 1e-9 <= reported_at <= 0.1 + 1.0 / fps + 1e-9


@pytest.mark.parametrize("fps", RATES)
def test_the_background_seed_takes_the_same_time_at_every_rate(fps: float) -> None:
    proposer = MotionProposer(WIDTH, HEIGHT, ReflexConfig(bootstrap_s=0.5), camera_height_m=CAMERA_M,
                              downscaled=False)
    background = textured_background(7)
    frame = 0
    while not proposer.seeded:
        proposer.propose(background, 0.0, frame / fps)
        frame += 1
    assert (frame - 1) / fps == pytest.approx(0.5, abs=1.0 / fps + 1e-9)


def test_a_rate_below_ten_fps_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    frame = textured_background(3, 256, 128)
    tier = ReflexPerception(256, 128, Settings(reflex=ReflexConfig(work_width=256)))
    with caplog.at_level(logging.WARNING, logger="vigil360.edge.reflex.perception"):
        for index in range(20):
            tier.process(frame, index / 8.0)
    assert tier.rate_warning is not None and "8.0 fps" in tier.rate_warning
    assert sum("below 10" in record.getMessage() for record in caplog.records) == 1  # once, not every frame
    # Back above the limit: the warning clears.
    for index in range(20, 60):
        tier.process(frame, 20 / 8.0 + (index - 19) / 15.0)
    assert tier.rate_warning is None


def test_ten_fps_itself_is_not_warned() -> None:
    frame = textured_background(3, 256, 128)
    tier = ReflexPerception(256, 128, Settings(reflex=ReflexConfig(work_width=256)))
    for index in range(25):
        tier.process(frame, index / 10.0)
    assert tier.rate_warning is None
