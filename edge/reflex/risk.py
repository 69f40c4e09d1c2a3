"""Risk from physics, per track: looming, closing speed, predicted closest approach, the rear
personal zone, and fast crossings in front of the wearer.

Each rule gives a score that is exactly 0.5 where its own threshold is met and rises to 1 as
the situation gets worse, so one `flag_threshold` (0.5 by default) means "some rule's
threshold is met" and the scores of different rules are comparable. The track's risk is the
highest rule score, and its reason is that rule's plain-words name.

Positions come from the ground-contact distance (see `geometry.ground_distance`) and the world
bearing (camera yaw plus the wearer's own turn). Whether something comes *at* the wearer is judged
on its position relative to the wearer, but whether it moves at all is judged on its own velocity
over the ground (relative motion plus the wearer's own travel): a walking wearer closes on everyone
standing ahead, and passes walkers coming the other way at twice walking pace; velocities are Theil-Sen fits (medians of
pairwise slopes) over `history_s`, which shrug off frames whose contact row jumped. A motion
rule also needs the samples to agree with the fit (the range shrinking, the displacement along
the velocity) for most pairs: pixel jitter on a standing or strolling person gives large fitted
speeds now and then, but never that agreement. Looming (the rate of angular growth) needs no
distance at all: tau = theta / (d theta / dt) is the time to contact for an entity closing at
constant speed.

Guards against bystander false flags (physics, not tuning): the speeds the motion rules use are
the fit less `speed_sigmas` of its own error, measured from the positions' scatter about the fit;
a window whose range jumps faster than anything on a street moves (a merge with a neighbour) is
not used for the speed-only rules; and "close behind you" needs a track that was once seen
outside the personal zone (one born inside it is a fragment of a near entity's region).
Against missed approaches: a sample whose range reads farther than a nearer one allows has lost its
ground contact (a head-on wheel, far legs) and is left out of the fit (`lost_contacts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np

from vigil360.config import ReflexConfig
from vigil360.edge.reflex.tracker import Observation, linear_slope, pairwise_slopes

# Distances whose one-sigma error exceeds this share of the distance are too vague to predict
# a path from (contact near the horizon, or far away); looming takes over for those.
_MAX_RELATIVE_SIGMA = 0.35
# Looming only counts once the entity is growing by at least this share per second (noise floor).
_MIN_GROWTH_PER_S = 0.08
# However long the window (`config.min_fit_s`), a fit needs this many samples at the least.
MIN_SAMPLES = 4
# The span of samples that say where an entity is now: enough to outvote one bad contact row at 30 fps,
# and never fewer than three samples (at 10 fps 0.17 s holds two, whose median is their mean: one bad
# row then pulls it in for two frames in a row, as long as a flag needs to be confirmed).
_RECENT_S = 0.17
_RECENT_MIN_SAMPLES = 3
# Looming alone (no usable distance: an airborne object) must be this consistent (R^2 of the
# log-size fit) and this imminent before it counts; motion-mask edges make sizes jumpy.
_LOOMING_R2 = 0.8
_LOOMING_TAU_S = 2.0
# Share of sample pairs whose range shrinks that an approach needs: a real approach shrinks the
# range between nearly all pairs of frames; contact-row jitter gives about half.
_APPROACH_AGREEMENT = 0.75
# Closing faster than a run (m/s) needs looming to agree within this factor of tau = range / closing.
_FAST_CLOSING_MPS = 3.0
_LOOMING_SLACK = 2.0


@dataclass(frozen=True)
class RiskAssessment:
    risk: float
    reason: str
    tau_s: float | None  # looming time to contact
    closing_mps: float | None
    time_to_zone_s: float | None
    closest_approach_m: float | None


def looming_tau(heights_deg: np.ndarray, times: np.ndarray) -> tuple[float | None, float]:
    """(time to contact from angular growth, R^2 of the log-size fit); tau is None unless the
    entity is clearly growing."""
    heights = np.asarray(heights_deg, dtype=np.float64)
    if heights.size < 3 or np.any(heights <= 0):
        return None, 0.0
    logs = np.log(heights)
    times = np.asarray(times, dtype=np.float64)
    growth = linear_slope(logs, times)
    residual = logs - logs.mean() - growth * (times - times.mean())
    spread = float(np.sum((logs - logs.mean()) ** 2))
    r2 = 0.0 if spread == 0 else 1.0 - float(np.sum(residual**2)) / spread
    return (None if growth < _MIN_GROWTH_PER_S else 1.0 / growth), r2


def _grows_wider(observations: list[Observation], times: np.ndarray) -> bool:
    """Whether the box grows in width too: something coming closer grows in every direction, while a
    strip of facade or roofline uncovered by a stale background model (a wearer looking round, then
    setting off) lengthens in one only."""
    width_tau, _ = looming_tau(np.array([obs.box.width for obs in observations]), times)
    return width_tau is not None


def _time_to_zone(position: np.ndarray, velocity: np.ndarray, radius: float) -> float | None:
    """First time t >= 0 with |p + v t| <= radius (0 if already inside), None if never."""
    if np.dot(position, position) <= radius**2:
        return 0.0
    a = float(np.dot(velocity, velocity))
    b = 2.0 * float(np.dot(position, velocity))
    c = float(np.dot(position, position)) - radius**2
    disc = b * b - 4 * a * c
    if a == 0 or disc < 0:
        return None
    t = (-b - np.sqrt(disc)) / (2 * a)
    return float(t) if t >= 0 else None


def _heading_agreement(slopes_x: np.ndarray, slopes_z: np.ndarray, velocity: np.ndarray) -> float:
    """Share of sample pairs whose displacement (given as pairwise slopes) points along the fitted
    velocity, pairs with no displacement left out. Near 1 for a real mover; about 0.5 for a
    standing entity whose distance jitters by a pixel row, however fast that jitter looks."""
    speed = float(np.linalg.norm(velocity))
    if speed == 0:
        return 0.0
    along = (slopes_x * velocity[0] + slopes_z * velocity[1]) / speed
    moving = along[along != 0]
    return float(np.mean(moving > 0)) if moving.size else 0.0


def _ramp_above(value: float, threshold: float, full: float) -> float:
    """0.5 at threshold, 1 at `full` (beyond threshold in the direction of full), below 0.5 before."""
    if full == threshold:
        return 1.0 if value >= threshold else 0.0
    share = (value - threshold) / (full - threshold)
    return float(np.clip(0.5 + 0.5 * share, 0.0, 1.0))


def _velocity_sigma(xs: np.ndarray, zs: np.ndarray, t: np.ndarray, velocity: np.ndarray) -> float:
    """One-sigma error of a fitted ground velocity (m/s), from the measured scatter of the positions
    about the fitted track: sigma_v = sigma_pos * sqrt(12 / n) / span for evenly spaced samples.
    Contact-row jitter at 6-8 m, or a merge with a neighbour, shows up here as large scatter, so the
    speeds it fakes are discounted by exactly the noise that made them."""
    span = float(t[-1] - t[0])
    # Three samples have no scatter to measure: the Theil-Sen line through them passes through two, so
    # the median residual is zero whatever the noise (at 10 fps a fit may rest on three usable samples).
    if t.size < 4 or span <= 0:
        return float("inf")
    centred = t - t.mean()
    residuals = np.hypot(xs - np.median(xs - velocity[0] * centred) - velocity[0] * centred,
                         zs - np.median(zs - velocity[1] * centred) - velocity[1] * centred)
    # 1.4826 * MAD of the residual lengths: robust to a few wild rows, like the Theil-Sen fit itself.
    scatter = 1.4826 * float(np.median(residuals))
    return scatter * float(np.sqrt(12.0 / t.size)) / span


def range_jumps(observations: list[Observation], config: ReflexConfig, row_deg: float) -> bool:
    """Whether the ground range jumps between consecutive frames by more than anything on a street can
    move (`max_speed_mps`) plus two pixel rows of contact jitter at that range. Such a jump is a merge
    with a neighbour or a lost ground contact, not motion: a fit through it invents metres per second
    (a passer-by at 7 m "closing" at 20 m/s), so the speed rules do not use the window."""
    row_rad = np.radians(row_deg)
    for before, after in pairwise(observations):
        a, b = before.distance.metres, after.distance.metres
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        depression = np.radians(max(-after.contact_pitch, 0.5))
        # d = h / tan(p)  =>  dd/dp = d / (sin p cos p): metres per radian of contact pitch.
        row_m = b / (np.sin(depression) * np.cos(depression)) * row_rad
        if abs(b - a) > config.max_speed_mps * (after.time_s - before.time_s) + 2.0 * row_m:
            return True
    return False


def lost_contacts(observations: list[Observation], config: ReflexConfig, row_deg: float) -> np.ndarray:
    """Per sample, whether its ground contact was lost: it reads farther than some nearer sample of the
    window allows (that one's range plus `max_speed_mps` times the time between them plus two pixel
    rows of contact at the nearer range). A region only ever loses its bottom to the background (a
    wheel seen head-on is a pixel wide; legs far away fade), and then its contact is a foot, a pedal or
    a hip: metres too far, on and off. The nearer readings are the entity's; a fit through the far ones
    has no approach in it (a cyclist riding from 18 m to 8 m read 20 m throughout)."""
    metres = np.array([obs.distance.metres for obs in observations], dtype=np.float64)
    times = np.array([obs.time_s for obs in observations], dtype=np.float64)
    finite = np.isfinite(metres)
    lost = np.zeros(metres.size, dtype=bool)
    if finite.sum() < 2:
        return lost
    depression = np.radians(np.maximum(-np.array([obs.contact_pitch for obs in observations]), 0.5))
    row_m = np.where(finite, metres / (np.sin(depression) * np.cos(depression)) * np.radians(row_deg), np.inf)
    allowed = (metres[None, :] + config.max_speed_mps * np.abs(times[:, None] - times[None, :])
               + 2.0 * row_m[None, :])  # [i, j]: the farthest sample i may read, given sample j
    lost[finite] = np.any(metres[finite, None] > allowed[np.ix_(finite, finite)], axis=1)
    return lost


def assess(observations: list[Observation], config: ReflexConfig,
           farthest_m: float | None = None, row_deg: float | None = None,
           drop_lost_contacts: bool = True) -> RiskAssessment:
    """Risk of one track from its recent observations. `farthest_m` is the farthest the track was ever
    seen (None: unknown); an entity "close behind you" must have been seen outside the personal zone,
    since whatever was born inside it is a fragment of a near entity that already has a track.
    `row_deg` is the pitch of one pixel row at the working resolution (default: `config.work_width`'s).
    `drop_lost_contacts`: leave `lost_contacts` out of the fit (off for a walking wearer: there a region's
    bottom comes from two flow pairs of different reach, and on development clips the rule cut a thief's
    lead from 1.47 s to 0.30 s and a cyclist's from 0.90 s to 0.77 s, with no walking approach gained)."""
    times = np.array([obs.time_s for obs in observations])
    heights = np.array([obs.box.height for obs in observations])
    tau, tau_r2 = looming_tau(heights, times)
    last = observations[-1]
    yaw_now = last.box.yaw

    distances = [obs.distance for obs in observations]
    usable = [d.metres < np.inf and d.sigma <= _MAX_RELATIVE_SIGMA * d.metres for d in distances]
    scores: list[tuple[float, str]] = [(0.0, "")]
    closing = time_to_zone = closest = None
    if len(observations) < MIN_SAMPLES or times[-1] - times[0] < config.min_fit_s * (1 - 1e-6):
        return RiskAssessment(0.0, "", tau, None, None, None)

    row_deg = 360.0 / config.work_width if row_deg is None else row_deg
    # The latest sample must have a usable range; the fit then leaves out every lost contact.
    latest_usable = usable[-1]
    if drop_lost_contacts:
        usable = [ok and not lost for ok, lost in zip(usable, lost_contacts(observations, config, row_deg),
                                                      strict=True)]
    usable_times = times[np.array(usable)]
    if (latest_usable and usable_times.size >= MIN_SAMPLES - 1
            and usable_times[-1] - usable_times[0] >= 0.5 * config.min_fit_s * (1 - 1e-6)):
        t = times[usable]
        # World bearings (the wearer's own turn removed): turning in place must not look like motion.
        yaw_r = np.radians([obs.ground_yaw + obs.heading_deg for obs, ok in zip(observations, usable, strict=True)
                            if ok])
        metres = np.array([d.metres for d, ok in zip(distances, usable, strict=True) if ok])
        # Ground plane, wearer at the origin: x to the right, z ahead. Unwrap so the seam is harmless.
        yaw_r = np.unwrap(yaw_r)
        xs, zs = metres * np.sin(yaw_r), metres * np.cos(yaw_r)
        # Theil-Sen velocity: the median of pairwise slopes, indifferent to a few wild samples.
        slopes_x, slopes_z = pairwise_slopes(xs, t), pairwise_slopes(zs, t)
        if slopes_x.size == 0:
            return RiskAssessment(0.0, "", tau, None, None, None)
        velocity = np.array([np.median(slopes_x), np.median(slopes_z)])
        # Fitted position now: the median of the samples carried forward along the fitted velocity.
        ahead = times[-1] - t  # to now, even when the latest sample's contact was lost
        position = np.array([np.median(xs + velocity[0] * ahead), np.median(zs + velocity[1] * ahead)])
        range_now = float(np.linalg.norm(position))
        closing = -float(np.dot(position, velocity)) / max(range_now, 1e-6)
        speed2 = float(np.dot(velocity, velocity))
        t_closest = -float(np.dot(position, velocity)) / speed2 if speed2 > 0 else 0.0
        closest = float(np.linalg.norm(position + velocity * max(t_closest, 0.0)))
        time_to_zone = _time_to_zone(position, velocity, config.personal_zone_m)
        # The terms below are computed only for a rule that gets as far as them, and at most once: with a crowd
        # in view the tier assesses a dozen tracks a frame, and most are not coming closer (the margin is >= 0,
        # so a closing speed under the threshold fails whatever the margin).

        @cache  # used by two rules
        def margin() -> float:
            """Speeds the motion rules trust: the fit less `speed_sigmas` of its own error."""
            return config.speed_sigmas * _velocity_sigma(xs, zs, t, velocity)

        @cache  # used by two rules
        def own_speed() -> float:
            """The entity's own speed over the ground: relative positions plus where the wearer had walked
            to. Walking up to someone who stands still closes the range, but they are not approaching."""
            wearer = np.array([[obs.wearer_x, obs.wearer_z] for obs, ok in zip(observations, usable, strict=True)
                               if ok])
            own = np.array([np.median(pairwise_slopes(xs + wearer[:, 0], t)),
                            np.median(pairwise_slopes(zs + wearer[:, 1], t))])
            return float(np.linalg.norm(own))

        def shrinking() -> bool:
            """Whether the range shrinks between most pairs (pairs on the same contact row, equal range, say
            nothing about the direction of travel)."""
            range_slopes = pairwise_slopes(metres, t)
            moving = range_slopes[range_slopes != 0]
            return (float(np.mean(moving < 0)) if moving.size else 0.0) >= _APPROACH_AGREEMENT

        @cache  # used by two rules
        def steady() -> bool:
            ok = _heading_agreement(slopes_x, slopes_z, velocity) >= _APPROACH_AGREEMENT
            # A fast closing speed must show as looming (growth ~ closing / range): far away, one pixel
            # row of contact is metres, and two entities briefly merged can fake 10+ m/s.
            if closing > _FAST_CLOSING_MPS:
                ok = ok and tau is not None and tau <= _LOOMING_SLACK * range_now / closing
            return ok

        if (closing >= config.min_closing_mps and time_to_zone is not None and shrinking() and steady()
                and closing - margin() >= config.min_closing_mps and own_speed() - margin() >= config.min_closing_mps):
            # 0.5 when contact with the personal zone is `horizon_s` away, 1 when it is now.
            scores.append((_ramp_above(-time_to_zone, -config.horizon_s, 0.0), "approaching fast"))
        came_in = farthest_m is None or farthest_m > config.personal_zone_m
        if abs(yaw_now) >= config.rear_yaw_deg and came_in:
            # Where it is now, from the last few frames only: the fitted position leans on the whole
            # window, which still remembers someone who has just stepped away.
            count = max(int(np.count_nonzero(t >= t[-1] - _RECENT_S)), _RECENT_MIN_SAMPLES)
            recent = float(np.median(metres[-count:]))
            scores.append((_ramp_above(-recent, -config.personal_zone_m, 0.0), "close behind you"))
        in_front = abs(yaw_now) <= config.front_half_width_deg and range_now <= config.crossing_distance_m
        passes_close = 0.0 <= t_closest <= config.pass_horizon_s and closest <= config.close_pass_m
        # Speed alone decides these two, so a window whose range jumped (a merge) is not used for them;
        # the approach rule has its own agreement tests and keeps the window.
        if (in_front or passes_close) and steady() and not range_jumps(observations, config, row_deg):
            # Speed over ground, not just its lateral part: a car passing 2 m away at 8 m/s is
            # dangerous whether it is still closing or already level with the wearer.
            scores.append((_ramp_above(own_speed() - margin(), config.crossing_speed_mps,
                                       2 * config.crossing_speed_mps),
                           "crossing in front" if in_front else "passing close at speed"))
    elif (tau is not None and tau_r2 >= _LOOMING_R2 and tau <= _LOOMING_TAU_S and _grows_wider(observations, times)
          and not any(obs.clipped for obs in observations)):
        # No usable distance (airborne, or contact at the horizon): only a clean, fast looming counts, and
        # only on boxes that are the entity's own (a clipped region's box ends at the band's edge: on
        # photograph worlds sky just below the walking band's top grew from 2 to 8 deg in 0.2 s that way).
        scores.append((_ramp_above(-tau, -_LOOMING_TAU_S, 0.0), "approaching fast"))

    risk, reason = max(scores, key=lambda item: item[0])
    return RiskAssessment(float(risk), reason, tau, closing, time_to_zone, closest)
