"""Sentences, and the cooldown / escalation / interrupt / stale rules."""

from __future__ import annotations

import pytest

from vigil360.config import SpeechConfig
from vigil360.edge.announce import (
    AlertGate,
    SpeechQueue,
    Utterance,
    compose_sentence,
    distance_words,
    motion_phrase,
)


@pytest.mark.parametrize(
    ("metres", "words"),
    [
        (None, None),
        (float("inf"), None),
        (0.4, "very close"),
        (1.0, "one metre"),
        (1.3, "one and a half metres"),
        (2.2, "two metres"),
        (2.8, "three metres"),
        (6.4, "six metres"),
        (40.0, "far away"),
    ],
)
def test_distance_words(metres, words):
    assert distance_words(metres) == words


@pytest.mark.parametrize(
    ("verbosity", "directions", "yaw", "expected"),
    [
        ("normal", "clock", 150.0, "Person in a red jacket approaching you fast, 5 o'clock, one metre."),
        ("minimal", "clock", 150.0, "Person approaching you fast, 5 o'clock."),
        ("normal", "words", -179.0, "Person in a red jacket approaching you fast, behind you, one metre."),
        ("normal", "words", -90.0, "Person in a red jacket approaching you fast, on your left, one metre."),
        (
            "verbose",
            "clock",
            0.0,
            "Person in a red jacket approaching you fast, 12 o'clock, one metre, give or take half a metre.",
        ),
    ],
)
def test_compose_sentence(verbosity, directions, yaw, expected):
    sentence = compose_sentence(
        who="person in a red jacket",
        label="person",
        motion="approaching you fast",
        yaw=yaw,
        distance_m=1.1,
        distance_sigma_m=0.2,
        verbosity=verbosity,
        directions=directions,
    )
    assert sentence == expected


def test_motion_phrase_names_whom_when_it_is_not_the_wearer():
    assert motion_phrase("approaching fast") == "approaching you fast"
    assert (
        motion_phrase("reaching toward a bag", whom="the person on your left")
        == "reaching toward a bag near the person on your left"
    )
    assert motion_phrase("glancing at a wallet") == "glancing at a wallet"


def test_gate_cooldown_and_escalation():
    gate = AlertGate(SpeechConfig(cooldown_s=5.0, escalation=0.2, urgent_risk=0.9, min_risk=0.5))
    assert gate.due("e1", 0.6, now=0.0)
    assert not gate.due("e1", 0.65, now=1.0), "same entity, same risk, within the cooldown"
    assert gate.due("e2", 0.6, now=1.0), "the cooldown is per entity"
    assert gate.due("e1", 0.85, now=2.0), "risk rose by >= escalation: re-announced within the cooldown"
    assert not gate.due("e1", 0.86, now=3.0)
    assert gate.due("e1", 0.95, now=3.5), "becoming urgent escalates"
    assert not gate.due("e1", 0.95, now=4.0)
    assert gate.due("e1", 0.95, now=8.6), "after the cooldown it may be said again"
    assert not gate.due("e3", 0.4, now=9.0), "below min_risk nothing is announced"


def test_gate_forgets_gone_entities_after_cooldown():
    gate = AlertGate(SpeechConfig(cooldown_s=5.0))
    gate.due("e1", 0.7, now=0.0)
    gate.forget(live_ids=set(), now=1.0)
    assert not gate.due("e1", 0.7, now=2.0), "still in cooldown: remembered"
    gate.forget(live_ids=set(), now=6.0)
    assert gate._last == {}


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _utterance(entity: str, risk: float, read_at: float, urgent: bool = False) -> Utterance:
    return Utterance(f"{entity} at {risk}", entity, risk, urgent, read_at)


def test_queue_speaks_highest_risk_first_and_drops_stale():
    clock = _Clock()
    queue = SpeechQueue(SpeechConfig(stale_after_s=1.5, queue_size=4), clock=clock)
    queue.put(_utterance("e1", 0.6, 99.9))
    queue.put(_utterance("e2", 0.8, 99.9))
    queue.put(_utterance("e3", 0.7, 98.0))  # already 2 s old when read
    assert queue.get().entity_id == "e2"
    assert queue.get().entity_id == "e1"
    assert queue.get() is None, "the stale one is dropped, not spoken late"
    assert queue.dropped_stale == 1


def test_queue_urgent_interrupts_and_clears_calmer_speech():
    clock = _Clock()
    queue = SpeechQueue(SpeechConfig(), clock=clock)
    queue.put(_utterance("e1", 0.6, 100.0))
    queue.put(_utterance("e2", 0.7, 100.0))
    assert not queue.interrupt.is_set()
    queue.put(_utterance("e3", 0.95, 100.0, urgent=True))
    assert queue.interrupt.is_set(), "speech in progress must be cut"
    assert queue.pending() == 1 and queue.get().entity_id == "e3"
    assert queue.dropped_full == 2


def test_queue_newer_alert_replaces_pending_one_for_same_entity():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(Utterance("old", "e1", 0.6, False, 100.0))
    queue.put(Utterance("new", "e1", 0.7, False, 100.0))
    assert queue.pending() == 1 and queue.get().text == "new"
    assert queue.replaced == 1


def test_queue_is_bounded_dropping_lowest_risk():
    queue = SpeechQueue(SpeechConfig(queue_size=2), clock=_Clock())
    assert queue.put(_utterance("e1", 0.9, 100.0))
    assert queue.put(_utterance("e2", 0.8, 100.0))
    assert not queue.put(_utterance("e3", 0.6, 100.0)), "the new one is the least important"
    assert queue.put(_utterance("e4", 0.85, 100.0))
    assert [queue.get().entity_id for _ in range(2)] == ["e1", "e4"]
    assert queue.dropped_full == 2
