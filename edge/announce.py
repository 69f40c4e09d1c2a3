"""Deciding what to say and in which order: short, direction-first wording, and the queue rules.

The wearer needs *where* before anything else: every form starts with the direction.
- Urgent: direction + what, at most 5 words and 1.2 s of audio ("7 o'clock person!").
- Normal: direction, who (appearance), what, distance, at most 3 s ("5 o'clock, person in red
  coming at two metres."); verbose adds the distance's spread and keeps full descriptions.
- Escalation of an entity the wearer already heard: only what changed ("Closer, two metres.";
  "Now 4 o'clock, two metres."). If the wearer never heard the entity (the first alert was
  dropped or cut), the queue says the normal form instead.
Durations were measured on the shipped espeak-ng voice (tests/edge/test_alert_audio.py): each
comma costs ~0.25 s and each word ~0.3 s, which is why descriptions are compact here. Wording
follows assistive practice: clock directions or plain side words by setting, distances in words,
nothing about age or looks beyond clothing colours.

Two rules objects:
- `AlertGate` (loop thread): an entity is announced once, then not again within the cooldown
  unless its risk escalates or it becomes urgent.
- `SpeechQueue` (between the loop and the speech worker): see its docstring.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from vigil360.config import SpeechConfig
from vigil360.edge.geometry import clock_hour, wrap_yaw

_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen",
)
# Reflex reasons are physics; say them as motion relative to the wearer, in as few syllables as
# carry the meaning (the direction and distance around them already say "you").
_REFLEX_MOTION = {
    "approaching fast": "coming",
    "close behind you": "close",
    "crossing in front": "crossing",
    "passing close at speed": "passing",
}
# Verbose users get the longer phrases.
_REFLEX_MOTION_VERBOSE = {
    "approaching fast": "approaching you fast",
    "close behind you": "staying close to you",
    "crossing in front": "crossing in front of you",
    "passing close at speed": "passing close to you at speed",
}
# One short noun per label for the urgent form; unknown labels use their last word.
_SHORT_NOUN = {
    "person": "person", "moving object": "object", "small object": "object", "vehicle": "vehicle",
    "bicycle": "bike", "cyclist": "bike", "car": "car", "ball": "ball",
}
# Eight compact sectors of 45 degrees, from ahead clockwise (the "words" direction style).
_SECTORS = ("ahead", "front right", "right", "back right", "behind", "back left", "left", "front left")
# Descriptions longer than this (VLM captions) are cut in the normal form to keep it within 3 s.
_MAX_WHO_WORDS = 5
# Beyond this the normal form leaves the distance out: at walking speeds it changes nothing the
# wearer does yet, and "eight metres" costs half a second of a 3 s budget.
_SAY_DISTANCE_WITHIN_M = 6.5


def distance_words(metres: float | None) -> str | None:
    """'very close', 'one metre', 'one and a half metres', 'six metres', 'far away'; None if unknown."""
    if metres is None or metres != metres or metres == float("inf"):
        return None
    if metres < 0.75:
        return "very close"
    if metres > 15.5:
        return "far away"
    # Half metres where they matter (within reach), whole metres beyond.
    rounded = round(metres * 2) / 2 if metres < 3 else float(round(metres))
    whole, half = int(rounded), rounded - int(rounded) >= 0.5
    if half:
        return f"{_NUMBER_WORDS[whole]} and a half metres"
    return f"{_NUMBER_WORDS[whole]} metre{'s' if whole != 1 else ''}"


def short_distance_words(metres: float | None) -> str | None:
    """'close' within reach, whole metres up to `_SAY_DISTANCE_WITHIN_M`, else None (left out)."""
    if metres is None or not math.isfinite(metres) or metres > _SAY_DISTANCE_WITHIN_M:
        return None
    if metres < 1.25:
        return "close"
    whole = int(round(metres))
    return f"{_NUMBER_WORDS[whole]} metre{'s' if whole != 1 else ''}"


def spread_words(sigma_m: float) -> str:
    """An uncertainty in words, never finer than half a metre."""
    if sigma_m <= 0.75:
        return "half a metre"
    whole = min(int(round(sigma_m)), len(_NUMBER_WORDS) - 1)
    return f"{_NUMBER_WORDS[whole]} metre{'s' if whole != 1 else ''}"


def direction_words(yaw: float, style: str) -> str:
    """'7 o'clock' (clock style) or one of eight compact sectors: 'back left', 'ahead'..."""
    if style == "clock":
        return f"{int(clock_hour(yaw))} o'clock"
    return _SECTORS[int(((float(wrap_yaw(yaw)) + 22.5) % 360.0) // 45.0)]


def motion_phrase(reason: str, whom: str = "you", verbose: bool = False) -> str:
    """What the entity does, with whom it concerns when that is not the wearer."""
    phrase = (_REFLEX_MOTION_VERBOSE if verbose else _REFLEX_MOTION).get(reason, reason)
    if whom not in ("", "you"):
        phrase = f"{phrase} near {whom}" if phrase else f"near {whom}"
    return phrase


def short_noun(label: str) -> str:
    label = (label or "").strip().lower()
    if label in _SHORT_NOUN:
        return _SHORT_NOUN[label]
    words = label.split()
    return _SHORT_NOUN.get(words[-1], words[-1]) if words else "object"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cap_words(text: str, limit: int) -> str:
    words = text.split()
    if words and words[0].lower() in ("a", "an", "the"):
        words = words[1:]
    return " ".join(words[:limit])


def urgent_sentence(*, label: str, yaw: float, directions: str = "clock") -> str:
    """Direction + what, no comma (a comma costs a quarter second): "7 o'clock person!"."""
    return f"{_capitalise(direction_words(yaw, directions))} {short_noun(label)}!"


def compose_sentence(*, who: str, label: str, motion: str, yaw: float, distance_m: float | None,
                     distance_sigma_m: float | None = None, verbosity: str = "normal",
                     directions: str = "clock") -> str:
    """The full alert, direction first: minimal is where + what, normal adds who and the distance
    (compact: at most 3 s of audio), verbose keeps long descriptions and the distance's spread."""
    where = direction_words(yaw, directions)
    if verbosity == "minimal":
        return f"{_capitalise(where)}, {f'{label} {motion}'.strip() or 'something'}."
    subject = (who or label or "something") if verbosity == "verbose" else _cap_words(who or label or "something",
                                                                                    _MAX_WHO_WORDS)
    what = f"{subject} {motion}".strip()
    if verbosity == "verbose":
        distance = distance_words(distance_m)
        if distance is not None and distance_sigma_m is not None and distance not in ("very close", "far away"):
            distance = f"{distance}, give or take {spread_words(distance_sigma_m)}"
        return _capitalise(", ".join([where, what] + ([distance] if distance else []))) + "."
    # "at two metres" instead of ", two metres": a word is cheaper than a comma's pause.
    distance = short_distance_words(distance_m)
    if distance == "close":
        what += ", close"
    elif distance is not None:
        what += f" at {distance}"
    return _capitalise(f"{where}, {what}") + "."


def escalation_sentence(*, yaw: float, distance_m: float | None, last_yaw: float, last_distance_m: float | None,
                        directions: str = "clock") -> str:
    """Only what changed since the wearer last heard about this entity."""
    where = direction_words(yaw, directions)
    moved = where != direction_words(last_yaw, directions)
    distance = short_distance_words(distance_m)
    closer = (distance is not None and last_distance_m is not None and math.isfinite(last_distance_m)
              and distance_m is not None and distance_m <= last_distance_m - 0.5)
    if moved:
        return f"Now {where}" + (f", {distance}." if distance else ".")
    if closer:
        return "Close now." if distance == "close" else f"Closer, {distance}."
    return f"Still {where}" + (f", {distance}." if distance else ".")


@dataclass(frozen=True)
class Wording:
    """What to say about one alert, and the forms the queue may need instead.

    `text` starts with `direction` (empty when an escalation does not restate it); `short` is the
    urgent form, used to carry a direction an interruption cut; `full` (escalations only) is said
    instead when the wearer never heard this entity.
    """

    text: str
    direction: str
    where: str
    short: str
    full: str | None = None


class Wordsmith:
    """Per-entity wording: full form first, then only what changed; urgent alerts in the short form."""

    def __init__(self) -> None:
        self._said: dict[str, tuple[float, float | None]] = {}  # entity -> (yaw, distance) last worded

    def word(self, entity_id: str, *, who: str, label: str, motion: str, yaw: float, distance_m: float | None,
             distance_sigma_m: float | None, urgent: bool, config: SpeechConfig) -> Wording:
        directions = config.directions
        full = compose_sentence(who=who, label=label, motion=motion, yaw=yaw, distance_m=distance_m,
                                distance_sigma_m=distance_sigma_m, verbosity=config.verbosity, directions=directions)
        short = urgent_sentence(label=label, yaw=yaw, directions=directions)
        where = _capitalise(direction_words(yaw, directions))
        last = self._said.get(entity_id)
        self._said[entity_id] = (yaw, distance_m)
        if urgent:
            return Wording(short, where, where, short)
        if last is None or config.verbosity == "verbose":
            return Wording(full, where, where, short)
        text = escalation_sentence(yaw=yaw, distance_m=distance_m, last_yaw=last[0], last_distance_m=last[1],
                                   directions=directions)
        # "Closer, two metres." restates no direction (the stereo image and earcon carry it).
        direction = "" if text.startswith(("Closer", "Close now")) else text.split(",")[0].rstrip(".")
        return Wording(text, direction, where, short, full)

    def forget(self, entity_ids: set[str]) -> None:
        for entity_id in entity_ids:
            self._said.pop(entity_id, None)


@dataclass
class _Announced:
    time: float
    risk: float
    urgent: bool


class AlertGate:
    """Cooldown with escalation, per entity. Times are the caller's clock (seconds)."""

    def __init__(self, config: SpeechConfig) -> None:
        self.config = config
        self._last: dict[str, _Announced] = {}

    def is_urgent(self, risk: float) -> bool:
        return risk >= self.config.urgent_risk

    def due(self, entity_id: str, risk: float, now: float) -> bool:
        """True when this entity should be announced now; the announcement is then remembered."""
        if risk < self.config.min_risk:
            return False
        urgent = self.is_urgent(risk)
        last = self._last.get(entity_id)
        escalated = last is not None and (risk >= last.risk + self.config.escalation or (urgent and not last.urgent))
        if last is not None and now - last.time < self.config.cooldown_s and not escalated:
            return False
        self._last[entity_id] = _Announced(now, risk, urgent)
        return True

    def forget(self, live_ids: set[str], now: float) -> None:
        """Drop memories of entities that are gone and out of cooldown (bounded memory)."""
        cooldown = self.config.cooldown_s
        for entity_id in [e for e, a in self._last.items() if e not in live_ids and now - a.time > cooldown]:
            del self._last[entity_id]


@dataclass(frozen=True)
class Carried:
    """A direction an interruption cut before the wearer heard it, said after the new alert."""

    entity_id: str
    text: str  # "Also 2 o'clock person."
    yaw: float | None
    direction: str


@dataclass(order=False)
class Utterance:
    text: str
    entity_id: str
    risk: float
    urgent: bool = False
    frame_read_at: float = field(default_factory=time.perf_counter)  # perf_counter of the frame
    alert: object | None = None  # the AlertEvent it voices, for the record
    yaw: float | None = None  # where it comes from (stereo rendering); None: no direction
    direction: str = ""  # the direction phrase `text` starts with ("" when it restates none)
    where: str = ""  # the plain direction ("7 o'clock"), which `full` and `short` start with
    short: str = ""  # the urgent form: what is carried if an interruption cuts this one
    full: str | None = None  # said instead of `text` if the wearer never heard this entity
    time_to_contact_s: float | None = None  # orders several threats: nearest first
    carried: list[Carried] = field(default_factory=list)
    earcon_played: bool = False  # its earcon already sounded over the speech it interrupts

    def carry(self) -> Carried:
        short = self.short or self.text
        where = self.where or self.direction
        return Carried(self.entity_id, f"Also {short[:1].lower()}{short[1:]}", self.yaw,
                       f"Also {where[:1].lower()}{where[1:]}" if where else "")


# Entities whose direction the wearer heard, remembered for so many entities (bounded memory).
_HEARD_MEMORY = 1024


class SpeechQueue:
    """Bounded queue of utterances between the loop and the speech worker.

    - Order: an entity the wearer has not heard yet comes before any repeat, so every direction
      is said once before one is said twice; then the earliest contact (the frame's time plus its
      time to contact: a waiting alert's figure counts down; urgent ones with none count as
      now), then risk, then the oldest.
    - An urgent utterance arriving during speech sets `interrupt`: the worker sounds its earcon
      over the speech at once; calmer speech is then cut once the direction phrase in progress
      is over. Urgent speech is cut only when it repeats an entity the wearer has heard and the
      arrival is about one they have not. Speech repeating an entity the wearer has heard is cut
      at once for a new direction, not after its own. An interruption never discards a direction
      the wearer has not heard: the worker reports how far it got (`finished`), and a direction
      that was cut anyway (a carried one) is carried into the next utterance ("Also 2 o'clock
      person!").
      Pending calmer utterances wait their turn instead of being cleared.
    - A calmer alert about an entity the wearer has not heard cuts calmer speech the same way
      (once the direction in progress is over; no earcon over it): a new direction comes before
      the rest of another entity's description.
    - A newer alert about an entity replaces its pending one; an escalation ("Closer, two
      metres.") becomes the full sentence if the wearer never heard that entity.
    - Stale: an utterance waiting past `stale_after_s` since its frame is dropped unspoken.
    """

    def __init__(self, config: SpeechConfig, clock=time.perf_counter) -> None:
        self.config = config
        self._clock = clock
        self._pending: list[Utterance] = []
        self._cond = threading.Condition()
        self.interrupt = threading.Event()  # set when an urgent utterance should cut current speech
        self.interrupting: Utterance | None = None  # the urgent utterance that set it
        self.cut_current = False  # whether it cuts the current speech (calmer) or only sounds its earcon
        self.cut_at_once = False  # the cut need not wait for the end of the direction in progress (a repeat)
        self.current: Utterance | None = None  # being spoken (set by `get`, cleared by `finished`)
        self._heard: OrderedDict[str, None] = OrderedDict()
        self.dropped_stale = 0
        self.dropped_full = 0
        self.replaced = 0
        self.carried = 0

    def heard(self, entity_id: str) -> bool:
        with self._cond:
            return entity_id in self._heard

    def _priority(self, utterance: Utterance) -> tuple:
        ttc = utterance.time_to_contact_s
        if ttc is None:
            ttc = 0.0 if utterance.urgent else math.inf
        # When contact is due (frame time + time to contact), not the time to contact as it was:
        # an alert that has waited a second is a second nearer than its figure says.
        return (utterance.entity_id in self._heard, utterance.frame_read_at + ttc, not utterance.urgent,
                -utterance.risk, utterance.frame_read_at)

    def put(self, utterance: Utterance) -> bool:
        """Queue it; False when it was dropped at once (queue full of more important speech)."""
        with self._cond:
            same = [u for u in self._pending if u.entity_id == utterance.entity_id]
            for old in same:  # the newer alert about an entity wins, keeping what it carried
                utterance.carried.extend(c for c in old.carried if c not in utterance.carried)
                self._pending.remove(old)
            self.replaced += len(same)
            current = self.current
            # Speech about an entity the wearer has heard, cut for one they have not, is cut at once:
            # its direction is a repeat (and goes on after the new one if the cut leaves it unheard).
            # Two threats 0.1 s apart would otherwise wait ~0.6 s for "4 o'clock" said a second time.
            repeat = current is not None and current.entity_id in self._heard
            new_direction = utterance.entity_id not in self._heard
            if utterance.urgent and current is not None:
                # Its earcon sounds at once either way. Calmer speech is cut for it, and so is an
                # urgent repeat when it brings a direction the wearer has not heard: a second threat
                # must not wait for the first one's direction to be said again. An urgent direction
                # the wearer has not heard yet is never cut.
                self.interrupting, self.cut_current = utterance, not current.urgent or (repeat and new_direction)
                self.cut_at_once = self.cut_current and repeat and new_direction
                self.interrupt.set()
            elif (current is not None and not current.urgent and utterance.entity_id != current.entity_id
                  and new_direction):
                # With two threats at once the second direction must not wait ~1 s for the rest
                # of the first one's sentence (its description). No earcon over the speech: the
                # new alert's own earcon sounds when it starts.
                self.cut_current, self.cut_at_once = True, repeat
                self.interrupt.set()
            self._pending.append(utterance)
            accepted = True
            if len(self._pending) > self.config.queue_size:
                lowest = max(self._pending, key=self._priority)
                self._pending.remove(lowest)
                self.dropped_full += 1
                accepted = lowest is not utterance
            self._cond.notify()
            return accepted

    def _drop_stale(self) -> None:
        now = self._clock()
        fresh = [u for u in self._pending if now - u.frame_read_at <= self.config.stale_after_s]
        self.dropped_stale += len(self._pending) - len(fresh)
        self._pending = fresh

    def get(self, timeout: float | None = None) -> Utterance | None:
        """The next utterance to speak (see the class docstring for the order), or None.

        It becomes `current` until `finished` is called; its text is already resolved (the full
        form for an entity the wearer has not heard)."""
        with self._cond:
            self._drop_stale()
            if not self._pending and timeout:
                self._cond.wait(timeout)
                self._drop_stale()
            if not self._pending:
                return None
            best = min(self._pending, key=self._priority)
            self._pending.remove(best)
            if best.full is not None and best.entity_id not in self._heard:
                best.text, best.direction, best.full = best.full, best.where, None
            self.current = best
            self.interrupt.clear()
            self.interrupting, self.cut_current, self.cut_at_once = None, False, False
            return best

    def finished(self, utterance: Utterance, heard: set[str], *, cut: bool = True) -> None:
        """The worker is done with `utterance`; `heard` holds the entities whose direction was played
        to its end. A direction it carried (or its own) that was cut goes on with the next one.
        `cut=False` (it failed: the worker counts and reports that) carries nothing: retrying a
        failing utterance would only fail again."""
        with self._cond:
            if self.current is utterance:
                self.current = None
            for entity_id in heard:
                self._heard[entity_id] = None
                self._heard.move_to_end(entity_id)
            while len(self._heard) > _HEARD_MEMORY:
                self._heard.popitem(last=False)
            unheard = [c for c in [utterance.carry(), *utterance.carried] if c.entity_id not in heard]
            utterance.carried = [c for c in utterance.carried if c.entity_id not in heard]
            if not unheard or not cut:
                return
            self._drop_stale()
            if self._pending:
                target = min(self._pending, key=self._priority)
                for carried in unheard:
                    if carried.entity_id == target.entity_id or carried in target.carried:
                        continue
                    target.carried.append(carried)
                    self.carried += 1
            elif utterance.entity_id not in heard:
                # Nothing waiting: the cut utterance itself goes back (the stale rule still applies).
                self._pending.append(utterance)
                self.carried += 1
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def clear(self) -> None:
        with self._cond:
            self._pending.clear()
