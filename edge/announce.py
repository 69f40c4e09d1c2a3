"""Deciding what to say: spoken-ready sentences, and when (cooldown, escalation, stale, interrupt).

Sentences are who + what + whom + where: "Person in a red top and blue trousers approaching
you fast, 5 o'clock, two metres." Wording follows assistive practice: clock directions or
plain left/right/behind words by setting, distances in words a listener takes in at once,
nothing about age or looks beyond clothing colours.

Two rules objects:
- `AlertGate` (loop thread): an entity is announced once, then not again within the cooldown
  unless its risk escalates or it becomes urgent.
- `SpeechQueue` (between the loop and the speech worker): the highest-risk fresh utterance is
  spoken next; an urgent one clears what is pending and interrupts speech in progress; an
  utterance that waited past `stale_after_s` since its frame is dropped unspoken.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from vigil360.config import SpeechConfig
from vigil360.edge.geometry import clock_hour, side_words

_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen",
)
# Reflex reasons are physics; say them as motion relative to the wearer.
_REFLEX_MOTION = {
    "approaching fast": "approaching you fast",
    "close behind you": "staying close to you",
    "crossing in front": "crossing in front of you",
    "passing close at speed": "passing close to you at speed",
}


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


def spread_words(sigma_m: float) -> str:
    """An uncertainty in words, never finer than half a metre."""
    if sigma_m <= 0.75:
        return "half a metre"
    whole = min(int(round(sigma_m)), len(_NUMBER_WORDS) - 1)
    return f"{_NUMBER_WORDS[whole]} metre{'s' if whole != 1 else ''}"


def direction_words(yaw: float, style: str) -> str:
    if style == "clock":
        return f"{int(clock_hour(yaw))} o'clock"
    return side_words(yaw)


def motion_phrase(reason: str, whom: str = "you") -> str:
    """What the entity does, with whom it concerns when that is not the wearer."""
    phrase = _REFLEX_MOTION.get(reason, reason)
    if whom not in ("", "you"):
        phrase = f"{phrase} near {whom}" if phrase else f"near {whom}"
    return phrase


def compose_sentence(*, who: str, label: str, motion: str, yaw: float, distance_m: float | None,
                     distance_sigma_m: float | None = None, verbosity: str = "normal",
                     directions: str = "clock") -> str:
    """One spoken-ready sentence; minimal keeps what + where, verbose adds the distance's spread."""
    where = direction_words(yaw, directions)
    subject = (label if verbosity == "minimal" else who) or label or "something"
    parts = [f"{subject} {motion}".strip(), where]
    if verbosity != "minimal":
        distance = distance_words(distance_m)
        if distance is not None:
            if verbosity == "verbose" and distance_sigma_m is not None and distance not in ("very close", "far away"):
                distance = f"{distance}, give or take {spread_words(distance_sigma_m)}"
            parts.append(distance)
    sentence = ", ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


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


@dataclass(order=False)
class Utterance:
    text: str
    entity_id: str
    risk: float
    urgent: bool = False
    frame_read_at: float = field(default_factory=time.perf_counter)  # perf_counter of the frame
    alert: object | None = None  # the AlertEvent it voices, for the record


class SpeechQueue:
    """Bounded priority queue of utterances with the stale, replace and interrupt rules."""

    def __init__(self, config: SpeechConfig, clock=time.perf_counter) -> None:
        self.config = config
        self._clock = clock
        self._pending: list[Utterance] = []
        self._cond = threading.Condition()
        self.interrupt = threading.Event()  # set when an urgent utterance should cut current speech
        self.dropped_stale = 0
        self.dropped_full = 0
        self.replaced = 0

    def put(self, utterance: Utterance) -> bool:
        """Queue it; False when it was dropped at once (queue full of more important speech)."""
        with self._cond:
            before = len(self._pending)
            self._pending = [u for u in self._pending if u.entity_id != utterance.entity_id]
            self.replaced += before - len(self._pending)  # the newer alert about an entity wins
            if utterance.urgent:
                # Interrupt-and-clear: an urgent alert goes first; pending calmer speech is dropped.
                calmer = [u for u in self._pending if not u.urgent]
                self.dropped_full += len(calmer)
                self._pending = [u for u in self._pending if u.urgent]
                self.interrupt.set()
            self._pending.append(utterance)
            accepted = True
            if len(self._pending) > self.config.queue_size:
                lowest = min(self._pending, key=lambda u: (u.urgent, u.risk, -u.frame_read_at))
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
        """The most important fresh utterance (urgent first, then risk, then oldest), or None."""
        with self._cond:
            self._drop_stale()
            if not self._pending and timeout:
                self._cond.wait(timeout)
                self._drop_stale()
            if not self._pending:
                return None
            best = max(self._pending, key=lambda u: (u.urgent, u.risk, -u.frame_read_at))
            self._pending.remove(best)
            return best

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def clear(self) -> None:
        with self._cond:
            self._pending.clear()
