"""Scenario scripts: who is in the clip, where they go, and what the ground truth says about it.

Scripts place actors in the world frame at the scenario's key moment (`event_s`): a bearing
given here is where the camera sees the actor at that moment, whatever the wearer's turning.
Captions describe clothing colours, objects and actions only, never age, race or looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vigil360.bench.synthetic.spec import ScenarioSpec
from vigil360.bench.synthetic.sprites import BALL_COLOURS, BOTTOM_COLOURS, CAR_COLOURS, TOP_COLOURS, Look
from vigil360.bench.synthetic.world import Track
from vigil360.schema import Caption, Role

PASSER_MIN_DISTANCE_M = 3.0  # bystanders never come closer than this


@dataclass
class Actor:
    actor_id: str
    look: Look
    track: Track
    label: str
    caption: Caption
    role: Role | None = None  # None: a distractor, absent from the ground-truth record
    # "wearer": the track is relative to the wearer (it follows a walking wearer: a thief matching
    # pace, a cyclist riding at them); "world": fixed to the street (passers-by, parked things).
    anchor: Literal["wearer", "world"] = "wearer"
    # The least distance to the wearer the script promises (a passer-by's `PASSER_MIN_DISTANCE_M`); None: none.
    # A world-anchored script is drawn before the wearer's walk, so the renderer holds it to this (`keep_off`).
    keep_off_m: float | None = None

    @property
    def is_distractor(self) -> bool:
        return self.role is None


@dataclass
class Interval:
    start_s: float
    end_s: float
    anomaly_class: str
    subject: str  # actor_id whose bearing gives the interval's direction


@dataclass
class Scene:
    actors: list[Actor]
    event_s: float | None
    intervals: list[Interval] = field(default_factory=list)
    caption: str = ""


def polar(yaw_deg: float, distance: float) -> np.ndarray:
    yaw = np.radians(yaw_deg)
    return np.array([distance * np.sin(yaw), distance * np.cos(yaw)])


def _person_look(rng: np.random.Generator, avoid: set[str] = frozenset()) -> Look:
    tops = [c for c in TOP_COLOURS if c not in avoid]
    return Look(
        "person", float(rng.uniform(1.6, 1.85)), str(rng.choice(tops)), str(rng.choice(BOTTOM_COLOURS))
    )


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _person_words(look: Look) -> str:
    return f"a person in {_a(look.main)} top and {look.second} trousers"


def _line(start: np.ndarray, end: np.ndarray, t0: float, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Times and points walking from start to end at `speed` from time t0."""
    duration = float(np.linalg.norm(end - start)) / speed
    return np.array([t0, t0 + duration]), np.stack([start, end])


def _track(times: list[float], points: list[np.ndarray], **kwargs: object) -> Track:
    pts = np.asarray(points, dtype=np.float64)
    return Track(np.asarray(times), pts[:, 0], pts[:, 1], **kwargs)  # type: ignore[arg-type]


def _first_time_within(track: Track, metres: float, t0: float, t1: float) -> float:
    times = np.linspace(t0, t1, 2000)
    x, z, _ = track.position(times)
    inside = np.flatnonzero(np.hypot(x, z) <= metres)
    return float(times[inside[0]]) if inside.size else t0


def _passer(
    rng: np.random.Generator,
    actor_id: str,
    spec: ScenarioSpec,
    look: Look,
    yaw_range: tuple[float, float] = (-180.0, 180.0),
    distance: tuple[float, float] = (3.2, 6.0),
) -> Actor:
    """Someone walking straight past, never nearer than PASSER_MIN_DISTANCE_M."""
    closest_yaw = float(rng.uniform(*yaw_range))
    offset = max(float(rng.uniform(*distance)), PASSER_MIN_DISTANCE_M + 0.1)
    closest = polar(closest_yaw, offset)
    direction = polar(closest_yaw + 90.0 * rng.choice([-1.0, 1.0]), 1.0)
    speed = float(rng.uniform(1.0, 1.5))
    t_closest = float(rng.uniform(0.2, 0.8)) * spec.duration_s
    span = 30.0
    times = [t_closest - span / speed, t_closest + span / speed]
    points = [closest - span * direction, closest + span * direction]
    return Actor(
        actor_id,
        look,
        _track(times, points),
        "person",
        Caption(appearance=_person_words(look), motion="walks past the wearer at a distance"),
        anchor="world",
        keep_off_m=PASSER_MIN_DISTANCE_M,
    )


def _event_time(rng: np.random.Generator, spec: ScenarioSpec) -> float:
    return float(rng.uniform(0.5, 0.65)) * spec.duration_s


def _stealer(
    rng: np.random.Generator, spec: ScenarioSpec, look: Look, event_s: float
) -> tuple[Actor, Interval]:
    """Approach from behind at walking pace, reach toward the wearer, hurry away."""
    side = float(rng.choice([-1.0, 1.0]))
    cross = bool(rng.random() < 0.6) if spec.cross_seam is None else spec.cross_seam
    if cross:  # the straight approach sweeps through directly-behind: the seam
        start_b, end_b = side * rng.uniform(25, 50), -side * rng.uniform(15, 40)
    else:
        start_b, end_b = side * rng.uniform(30, 60), side * rng.uniform(5, 25)
    start = polar(180.0 + start_b, float(rng.uniform(7.0, 9.0)))
    end = polar(180.0 + end_b, float(rng.uniform(0.42, 0.55)))
    speed = float(rng.uniform(1.2, 1.5))
    (t_start, t_arrive), _ = _line(start, end, 0.0, speed)
    shift = event_s - t_arrive
    away = polar(180.0 + end_b + side * 70.0, 9.0)
    t_leave = event_s + 1.8
    (_, t_gone), _ = _line(end, away, t_leave, 2.2)
    track = _track(
        [
            t_start + shift - 10.0,
            t_start + shift,
            event_s,
            event_s + 0.6,
            event_s + 1.4,
            t_leave,
            t_gone,
            t_gone + 20.0,
        ],
        [start, start, end, end, end, end, away, away],
        reach=np.array([0, 0, 0, 1, 1, 0, 0, 0], dtype=float),
    )
    actor = Actor(
        "perpetrator",
        look,
        track,
        "person",
        Caption(
            appearance=_person_words(look),
            motion="walks up from behind the wearer, reaches toward their bag and hurries away",
        ),
        role="perpetrator",
    )
    start_s = _first_time_within(track, 2.0, event_s - 30.0, event_s)
    return actor, Interval(start_s, t_leave, "Stealing", actor.actor_id)


def _scene_stealing(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    event_s = _event_time(rng, spec)
    look = _person_look(rng)
    actor, interval = _stealer(rng, spec, look, event_s)
    return Scene(
        [actor],
        event_s,
        [interval],
        f"{_person_words(look).capitalize()} comes up behind the wearer and reaches for their bag.",
    )


def _scene_lookalikes(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    event_s = _event_time(rng, spec)
    look = _person_look(rng)
    actor, interval = _stealer(rng, spec, look, event_s)
    twins = [
        _passer(
            rng,
            f"lookalike{i}",
            spec,
            Look("person", float(rng.uniform(1.6, 1.85)), look.main, look.second),
            yaw_range=(100.0, 260.0),
            distance=(3.2, 5.0),
        )
        for i in range(int(rng.integers(1, 3)))
    ]
    return Scene(
        [actor, *twins],
        event_s,
        [interval],
        f"Several people dressed alike walk behind the wearer; {_person_words(look)} reaches for their bag.",
    )


def _scene_collide(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    event_s = _event_time(rng, spec)
    look = Look(
        "cyclist",
        float(rng.uniform(1.7, 1.85)),
        str(rng.choice(TOP_COLOURS)),
        str(rng.choice(BOTTOM_COLOURS)),
    )
    heading_from = float(rng.uniform(-180, 180))
    start = polar(heading_from, 14.0)
    inward = -start / np.linalg.norm(start)
    lateral = np.array([inward[1], -inward[0]]) * float(rng.uniform(0.5, 0.8)) * rng.choice([-1.0, 1.0])
    speed = float(rng.uniform(4.0, 6.0))
    track = _track(
        [event_s - 20.0 / speed, event_s + 20.0 / speed], [lateral - inward * 20.0, lateral + inward * 20.0]
    )
    actor = Actor(
        "perpetrator",
        look,
        track,
        "bicycle",
        Caption(
            appearance=f"a person in {_a(look.main)} top riding a bicycle",
            motion="rides fast straight at the wearer and swerves past at the last moment",
        ),
        role="perpetrator",
    )
    interval = Interval(
        _first_time_within(track, 5.0, event_s - 10, event_s), event_s + 0.3, "Collide", "perpetrator"
    )
    return Scene(
        [actor], event_s, [interval], f"A cyclist in {_a(look.main)} top nearly runs into the wearer."
    )


def _scene_traffic(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    event_s = _event_time(rng, spec)
    colour = str(rng.choice(CAR_COLOURS))
    look = Look("car", 1.45, colour)
    closest = polar(float(rng.uniform(-180, 180)), float(rng.uniform(1.4, 2.0)))
    direction = np.array([closest[1], -closest[0]]) / np.linalg.norm(closest) * rng.choice([-1.0, 1.0])
    speed = float(rng.uniform(7.0, 10.0))
    span = 60.0
    track = _track(
        [event_s - span / speed, event_s + span / speed],
        [closest - span * direction, closest + span * direction],
    )
    actor = Actor(
        "perpetrator",
        look,
        track,
        "car",
        Caption(
            appearance=f"{_a(colour)} car",
            motion="drives past very close to the wearer at speed",
        ),
        role="perpetrator",
    )
    interval = Interval(
        _first_time_within(track, 6.0, event_s - 10, event_s), event_s + 0.4, "Traffic", "perpetrator"
    )
    return Scene(
        [actor], event_s, [interval], f"{_a(colour).capitalize()} car speeds past right next to the wearer."
    )


def _scene_throw(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    event_s = _event_time(rng, spec)
    look = _person_look(rng)
    bearing = float(rng.uniform(-180, 180))
    stand = polar(bearing, float(rng.uniform(4.0, 6.0)))
    release_s, land_s = event_s - 0.7, event_s + 0.25
    thrower = Actor(
        "perpetrator",
        look,
        _track(
            [event_s - 30.0, event_s - 1.2, event_s - 0.8, event_s - 0.6, event_s + 30.0],
            [stand + polar(bearing + 90, 3.0), stand, stand, stand, stand],
            reach=np.array([0, 0, 1, 0, 0], dtype=float),
        ),
        "person",
        Caption(appearance=_person_words(look), motion="throws a ball at the wearer"),
        role="perpetrator",
    )
    ball_colour = str(rng.choice(BALL_COLOURS))
    ball_look = Look("ball", 0.22, ball_colour)
    hit = polar(bearing + float(rng.uniform(-20, 20)), float(rng.uniform(0.5, 0.7)))
    times = np.linspace(release_s, event_s, 12)
    s = (times - release_s) / (event_s - release_s)
    flight = stand[None, :] * (1 - s[:, None]) + hit[None, :] * s[:, None]
    elevation = 1.5 * (1 - s) + 0.9 * s + float(rng.uniform(0.6, 1.2)) * 4 * s * (1 - s)
    fall_t = np.linspace(event_s, land_s, 5)[1:]
    fall = hit + (fall_t[:, None] - event_s) * (hit / np.linalg.norm(hit) * 1.5)[None, :]
    fall_elev = 0.9 * (1 - ((fall_t - event_s) / (land_s - event_s)) ** 2)
    rest = fall[-1] + hit / np.linalg.norm(hit) * 0.6
    ball = Actor(
        "ball",
        ball_look,
        _track(
            [*times, *fall_t, land_s + 1.0, land_s + 60.0],
            [*flight, *fall, rest, rest],
            elevation=np.concatenate([elevation, np.maximum(fall_elev, 0), [0.0, 0.0]]),
            active_from=release_s,
        ),
        "ball",
        Caption(appearance=f"a small {ball_colour} ball", motion="flies through the air at the wearer"),
        role="related",
    )
    interval = Interval(event_s - 1.2, land_s, "Throw", "perpetrator")
    return Scene(
        [thrower, ball],
        event_s,
        [interval],
        f"{_person_words(look).capitalize()} throws {_a(ball_colour)} ball at the wearer.",
    )


def _scene_bystander(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    return Scene([], None, [], "People walk past the wearer; nothing happens.")


def _wearer_speed(spec: ScenarioSpec) -> float:
    """Nominal walking speed for scripts that must outpace the wearer (the real one is drawn per clip)."""
    return 1.6 if spec.wearer in ("walking", "mixed") else 0.0


def _scene_overtake(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    """A cyclist or e-scooter rider overtaking from behind on the path, passing within arm's reach."""
    event_s = _event_time(rng, spec)
    look = Look("cyclist", float(rng.uniform(1.7, 1.85)), str(rng.choice(TOP_COLOURS)),
                str(rng.choice(BOTTOM_COLOURS)))
    lateral = float(rng.uniform(0.5, 0.9)) * float(rng.choice([-1.0, 1.0]))
    speed = _wearer_speed(spec) + float(rng.uniform(3.5, 5.5))
    # World-anchored along the street (+z), level with the wearer at event_s (the wearer is at z=0 then).
    track = _track([event_s - 40.0 / speed, event_s + 40.0 / speed], [np.array([lateral, -40.0]),
                                                                       np.array([lateral, 40.0])])
    actor = Actor("perpetrator", look, track, "bicycle",
                  Caption(appearance=f"a person in {_a(look.main)} top riding a bicycle",
                          motion="overtakes the wearer from behind, passing very close at speed"),
                  role="perpetrator", anchor="world")
    interval = Interval(_first_time_within(track, 5.0, event_s - 10, event_s), event_s + 0.3, "Collide",
                        "perpetrator")
    return Scene([actor], event_s, [interval],
                 f"A cyclist in {_a(look.main)} top overtakes the wearer from behind, very close.")


def _scene_standstill(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    """Someone standing still on the path ahead: the wearer walks up to them; no threat of their own."""
    look = _person_look(rng)
    stand = np.array([float(rng.uniform(1.6, 2.5)) * float(rng.choice([-1.0, 1.0])), float(rng.uniform(6.0, 14.0))])
    actor = Actor("standing0", look, _track([-60.0, 60.0], [stand, stand]), "person",
                  Caption(appearance=_person_words(look), motion="stands still on the path ahead"),
                  anchor="world")
    return Scene([actor], None, [], "The wearer walks past someone standing still on the path.")


def _scene_alongside(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    """People walking alongside the wearer at the wearer's own pace, a couple of metres off."""
    actors = []
    for index in range(int(rng.integers(1, 3))):
        offset = polar(float(rng.choice([-1.0, 1.0]) * rng.uniform(60, 120)), float(rng.uniform(2.0, 3.0)))
        look = _person_look(rng)
        actors.append(Actor(f"alongside{index}", look, _track([-60.0, 60.0], [offset, offset]), "person",
                            Caption(appearance=_person_words(look), motion="walks alongside the wearer"),
                            anchor="wearer"))
    return Scene(actors, None, [], "People walk alongside the wearer.")


def _scene_reversing(rng: np.random.Generator, spec: ScenarioSpec) -> Scene:
    """A car reversing out of a driveway ahead, across the wearer's path."""
    event_s = _event_time(rng, spec)
    colour = str(rng.choice(CAR_COLOURS))
    look = Look("car", 1.45, colour)
    side = float(rng.choice([-1.0, 1.0]))
    ahead = float(rng.uniform(0.3, 1.0))  # metres ahead of the wearer's position at event_s
    speed = float(rng.uniform(1.2, 2.2))
    start = np.array([side * 9.0, ahead])
    stop = np.array([-side * 1.0, ahead])
    (t0, t1), _ = _line(start, stop, 0.0, speed)
    shift = event_s - t1
    track = _track([t0 + shift - 30.0, t0 + shift, t1 + shift, t1 + shift + 30.0], [start, start, stop, stop])
    actor = Actor("perpetrator", look, track, "car",
                  Caption(appearance=f"{_a(colour)} car", motion="reverses out of a driveway across the path"),
                  role="perpetrator", anchor="world")
    interval = Interval(t0 + shift, event_s + 0.5, "Traffic", "perpetrator")
    return Scene([actor], event_s, [interval], f"{_a(colour).capitalize()} car reverses across the wearer's path.")


_SCRIPTS = {
    "stealing": _scene_stealing,
    "lookalikes": _scene_lookalikes,
    "collide": _scene_collide,
    "traffic": _scene_traffic,
    "throw": _scene_throw,
    "bystander": _scene_bystander,
    "overtake": _scene_overtake,
    "standstill": _scene_standstill,
    "alongside": _scene_alongside,
    "reversing": _scene_reversing,
}


def build_scene(spec: ScenarioSpec, rng: np.random.Generator) -> Scene:
    """The actors of `spec`'s clip, including its harmless bystanders."""
    scene = _SCRIPTS[spec.kind](rng, spec)
    if spec.bystanders is not None:
        count = spec.bystanders
    else:
        count = int(rng.integers(1, 3)) if spec.kind == "bystander" else int(rng.integers(0, 3))
    # Bystanders dress differently from the perpetrator so their captions are told apart.
    avoid = {actor.look.main for actor in scene.actors if not actor.is_distractor}
    for index in range(count):
        scene.actors.append(_passer(rng, f"bystander{index}", spec, _person_look(rng, avoid)))
    return scene
