"""Risk rules on hand-made observation histories (exact physics, no pixels)."""

from dataclasses import replace

import numpy as np
import pytest

from vigil360.config import ReflexConfig
from vigil360.edge.geometry import Distance
from vigil360.edge.reflex.risk import assess, looming_tau, range_jumps
from vigil360.edge.reflex.tracker import Observation
from vigil360.schema import AngleBox

FPS = 30.0
CAMERA_M = 1.2


def history(xs: np.ndarray, zs: np.ndarray, heading: np.ndarray | None = None,
            width_m: float | None = 0.5) -> list[Observation]:
    """Observations of an upright 1.75 m entity, `width_m` wide, at ground positions (x right, z
    ahead) of the wearer's initial heading; `heading` is the wearer's turn (deg) at each sample.
    `width_m=None` keeps the angular width fixed at 10 deg, whatever the distance."""
    heading = np.zeros_like(xs) if heading is None else heading
    out = []
    for i, (x, z, turn) in enumerate(zip(xs, zs, heading, strict=True)):
        distance = float(np.hypot(x, z))
        world_yaw = float(np.degrees(np.arctan2(x, z)))
        yaw = (world_yaw - turn + 180.0) % 360.0 - 180.0
        contact = float(np.degrees(np.arctan2(-CAMERA_M, distance)))
        top = float(np.degrees(np.arctan2(1.75 - CAMERA_M, distance)))
        width = 10.0 if width_m is None else float(np.degrees(2 * np.arctan2(width_m / 2, distance)))
        box = AngleBox(yaw=yaw, pitch=(top + contact) / 2, width=width, height=top - contact)
        out.append(Observation(i / FPS, box, contact, top, Distance(distance, 0.05 * distance), float(turn)))
    return out


def line(start: tuple[float, float], velocity: tuple[float, float], seconds: float = 1.0):
    t = np.arange(int(seconds * FPS)) / FPS
    return start[0] + velocity[0] * t, start[1] + velocity[1] * t


def test_walking_up_from_behind_is_approaching_fast() -> None:
    # 5.5 m behind, closing at 1.4 m/s: the personal zone is ~2.9 s away at the end of the window.
    xs, zs = line((0.3, -5.5), (0.0, 1.4))
    risk = assess(history(xs, zs), ReflexConfig())
    assert risk.reason == "approaching fast"
    assert risk.risk >= 0.5
    assert risk.closing_mps == pytest.approx(1.4, abs=0.1)
    assert risk.time_to_zone_s == pytest.approx((4.1 - 1.5) / 1.4, abs=0.2)


def test_a_passer_by_at_three_metres_is_not_risky() -> None:
    xs, zs = line((-3.0, 3.2), (1.4, 0.0))
    assert assess(history(xs, zs), ReflexConfig()).risk < 0.5


def test_someone_standing_right_behind_is_close_behind_you() -> None:
    xs, zs = line((0.2, -0.8), (0.0, 0.0))
    risk = assess(history(xs, zs), ReflexConfig())
    assert (risk.reason, risk.risk >= 0.5) == ("close behind you", True)


def test_a_fast_crossing_in_front() -> None:
    xs, zs = line((-3.0, 3.0), (5.0, 0.0), seconds=0.6)
    risk = assess(history(xs, zs), ReflexConfig())
    assert (risk.reason, risk.risk >= 0.5) == ("crossing in front", True)


def test_a_car_passing_close_at_the_side() -> None:
    xs, zs = line((2.0, -6.0), (0.0, 8.0), seconds=0.5)
    risk = assess(history(xs, zs), ReflexConfig())
    assert risk.risk >= 0.5
    assert risk.reason in ("passing close at speed", "approaching fast")


def test_the_wearer_turning_does_not_move_a_standing_person() -> None:
    # Someone still at 3 m while the wearer turns at 40 deg/s: the camera bearing sweeps, the world does not.
    t = np.arange(30) / FPS
    xs, zs = np.full(30, 2.0), np.full(30, 2.2)
    risk = assess(history(xs, zs, heading=40.0 * t), ReflexConfig())
    assert risk.risk < 0.5
    assert abs(risk.closing_mps) < 0.2


def test_too_short_a_history_gives_no_risk() -> None:
    xs, zs = line((0.0, -3.0), (0.0, 3.0), seconds=0.15)
    assert assess(history(xs, zs), ReflexConfig()).risk == 0.0


def test_looming_tau_is_the_time_to_contact() -> None:
    # An object closing from 6 m at 1.5 m/s: angular size ~ 1/d, so tau = d / v.
    times = np.arange(15) / FPS
    distance = 6.0 - 1.5 * times
    tau, r2 = looming_tau(np.degrees(2 * np.arctan(0.3 / distance)), times)
    assert tau == pytest.approx(distance.mean() / 1.5, rel=0.1)
    assert r2 > 0.95


def test_a_shrinking_object_has_no_tau() -> None:
    times = np.arange(15) / FPS
    tau, _ = looming_tau(np.linspace(10, 6, 15), times)
    assert tau is None


def test_jittery_ranges_are_discounted_from_the_speed() -> None:
    # 7 m away, passing at 2.8 m/s (just over crossing_speed_mps): clean ranges make it fast; the same
    # track through +-0.6 m contact-row jitter (one pixel row at 7 m) is not trusted to be that fast,
    # while a car at 8 m/s through the same jitter still is.
    rng = np.random.default_rng(0)
    config = ReflexConfig(close_pass_m=8.0)  # make the pass geometry count, so speed alone decides
    xs, zs = line((-4.0, 7.0), (2.8, 0.0))
    jitter = rng.choice([-0.6, 0.0, 0.6], size=zs.size)
    assert assess(history(xs, zs), config).risk >= 0.5
    assert assess(history(xs, zs + jitter), config).risk < 0.5
    assert assess(history(xs, zs + jitter), config.model_copy(update={"speed_sigmas": 0.0})).risk >= 0.5
    xs, zs = line((-6.0, 7.0), (8.0, 0.0), seconds=0.5)
    assert assess(history(xs, zs + jitter[: zs.size]), config).risk >= 0.5


def test_close_behind_needs_to_have_come_from_outside_the_zone() -> None:
    # A track born inside the personal zone is a fragment of a near entity that already has a track.
    xs, zs = line((0.2, -0.8), (0.0, 0.0))
    assert assess(history(xs, zs), ReflexConfig(), farthest_m=6.0).reason == "close behind you"
    assert assess(history(xs, zs), ReflexConfig(), farthest_m=0.9).risk < 0.5


def test_a_range_jump_is_a_merge_not_motion() -> None:
    # A walker 7 m away whose region merges with a nearer neighbour: the contact jumps 2.5 m in one frame.
    xs, zs = line((-3.0, 7.0), (1.3, 0.0))
    zs = np.where(np.arange(zs.size) >= 15, zs - 2.5, zs)
    observations = history(xs, zs)
    assert range_jumps(observations, ReflexConfig(), 0.75)
    # Speed alone would call it a close pass at speed (the approach rule, with its own tests, is switched off).
    config = ReflexConfig(close_pass_m=8.0, min_closing_mps=100.0, speed_sigmas=0.0)
    assert assess(observations, config, row_deg=0.75).risk < 0.5
    assert assess(observations, config.model_copy(update={"max_speed_mps": 1e6}), row_deg=0.75).risk >= 0.5
    # A car at 9 m/s, 16 m away, whose contact steps by one 0.75 deg pixel row (~2.8 m) now and then, is motion.
    xs, zs = line((1.5, -16.0), (0.0, 9.0), seconds=0.5)
    rows = np.round((zs + 16.0) / 2.8) * 2.8 - 16.0
    assert not range_jumps(history(xs, rows), ReflexConfig(), 0.75)


def test_a_passer_by_merged_with_a_car_behind_is_placed_by_its_ground_contact() -> None:
    # Walking past 3.2 m ahead while merged with a car farther out: the box centre stays put, the
    # contact (range and its bearing) moves sideways. Placed by the box centre, a shrinking range
    # at a fixed bearing reads as walking straight at the wearer.
    xs, zs = line((3.5, 3.2), (-1.3, 0.0))
    observations = history(xs, zs)
    frozen = observations[0].box.yaw
    merged = [replace(obs, box=obs.box.model_copy(update={"yaw": frozen}), contact_yaw=obs.box.yaw)
              for obs in observations]
    assert assess(merged, ReflexConfig()).reason != "approaching fast"
    by_box = [replace(obs, contact_yaw=None) for obs in merged]
    assert assess(by_box, ReflexConfig()).reason == "approaching fast"


def _airborne(heights: np.ndarray, widths: np.ndarray) -> list[Observation]:
    """Boxes above the horizon with no ground contact (no usable distance): only looming can judge them."""
    return [Observation(i / FPS, AngleBox(yaw=70.0, pitch=25.0, width=float(w), height=float(h)), 10.0, 40.0,
                        Distance(float("inf"), float("inf"))) for i, (h, w) in enumerate(zip(heights, widths,
                                                                                               strict=True))]


def test_looming_alone_needs_the_box_to_grow_wider_too() -> None:
    # A ball closing from 4 m at 3 m/s grows in height and width alike: tau ~ 1 s, flagged.
    times = np.arange(15) / FPS
    size = np.degrees(2 * np.arctan(0.15 / (4.0 - 3.0 * times)))
    ball = assess(_airborne(size, size), ReflexConfig())
    assert (ball.reason, ball.risk >= 0.5) == ("approaching fast", True)
    # The same growth in height on a 3-deg strip that keeps its width: an edge being uncovered, not looming.
    strip = assess(_airborne(size, np.full_like(size, 3.0)), ReflexConfig())
    assert strip.risk < 0.5


def test_looming_alone_is_not_read_from_a_clipped_box() -> None:
    # The same ball, but cut by the edge of the area its region came from on one sample: the box's growth
    # is then partly the band's, and no range backs it up.
    times = np.arange(15) / FPS
    size = np.degrees(2 * np.arctan(0.15 / (4.0 - 3.0 * times)))
    ball = _airborne(size, size)
    assert assess(ball, ReflexConfig()).risk >= 0.5
    cut = [replace(obs, clipped=i == 7) for i, obs in enumerate(ball)]
    assert assess(cut, ReflexConfig()).risk < 0.5


def _feet_up(observations: list[Observation], lost: np.ndarray, lift_m: float) -> list[Observation]:
    """The same entity, its ground contact lost on the `lost` samples: the region's bottom is then
    `lift_m` above the ground (a pedal or a foot), so its range reads too far."""
    out = []
    for obs, gone in zip(observations, lost, strict=True):
        if gone:
            true_m = obs.distance.metres
            contact = float(np.degrees(np.arctan2(-(CAMERA_M - lift_m), true_m)))
            far = CAMERA_M / np.tan(np.radians(-contact))
            obs = replace(obs, contact_pitch=contact, distance=Distance(far, 0.05 * far))
        out.append(obs)
    return out


def test_a_head_on_cyclist_whose_wheel_comes_and_goes_is_approaching() -> None:
    # Riding straight at the wearer from 11 m at 5 m/s; the wheel (a pixel wide head-on) is lost for
    # runs of frames, and the contact is then the pedal 0.55 m up: ~2.2x too far, on and off.
    xs, zs = line((0.4, 11.0), (0.0, -5.0))
    frames = np.arange(xs.size)
    lost = (frames % 9) >= 3  # found 3 frames, lost 6, as the region's bottom flickers
    observations = _feet_up(history(xs, zs), lost, 0.55)
    risk = assess(observations, ReflexConfig(), row_deg=0.75)
    assert (risk.reason, risk.risk >= 0.5) == ("approaching fast", True)
    assert risk.closing_mps == pytest.approx(5.0, rel=0.3)


def test_a_lost_contact_does_not_hide_a_standing_person_or_invent_an_approach() -> None:
    # Standing 8 m ahead with feet that fade out now and then: no motion either way.
    xs, zs = line((1.0, 8.0), (0.0, 0.0))
    lost = (np.arange(xs.size) % 5) == 0
    assert assess(_feet_up(history(xs, zs), lost, 0.4), ReflexConfig(), row_deg=0.75).risk < 0.5
    # Walking away at 1.4 m/s is not an approach, whichever samples lose their feet.
    xs, zs = line((0.5, 3.0), (0.0, 1.4))
    assert assess(_feet_up(history(xs, zs), ~lost, 0.4), ReflexConfig(), row_deg=0.75).risk < 0.5
