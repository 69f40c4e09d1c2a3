"""Sentences, and the cooldown / escalation / interrupt / stale rules."""

from __future__ import annotations

import pytest

from vigil360.config import SpeechConfig
from vigil360.edge.announce import (
    AlertGate,
    SpeechQueue,
    Utterance,
    Wordsmith,
    compose_sentence,
    distance_words,
    motion_phrase,
    urgent_sentence,
)
from vigil360.edge.geometry import clock_hour


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
        ("normal", "clock", 150.0, "5 o'clock, person in red coming, close."),
        ("minimal", "clock", 150.0, "5 o'clock, person coming."),
        ("normal", "words", -179.0, "Behind, person in red coming, close."),
        ("normal", "words", -90.0, "Left, person in red coming, close."),
        ("normal", "words", -135.0, "Back left, person in red coming, close."),
        ("verbose", "clock", 0.0, "12 o'clock, person in red coming, one metre, give or take half a metre."),
    ],
)
def test_compose_sentence_leads_with_where(verbosity, directions, yaw, expected):
    sentence = compose_sentence(
        who="person in red",
        label="person",
        motion="coming",
        yaw=yaw,
        distance_m=1.1,
        distance_sigma_m=0.2,
        verbosity=verbosity,
        directions=directions,
    )
    assert sentence == expected


def test_normal_form_cuts_long_descriptions_verbose_keeps_them():
    caption = "a person in a red top riding a bicycle"
    normal = compose_sentence(who=caption, label="person", motion="coming", yaw=0.0, distance_m=5.0)
    assert normal == "12 o'clock, person in a red top coming at five metres."
    verbose = compose_sentence(who=caption, label="person", motion="coming", yaw=0.0, distance_m=None,
                               verbosity="verbose")
    assert verbose == f"12 o'clock, {caption} coming."


@pytest.mark.parametrize(
    ("label", "yaw", "directions", "expected"),
    [
        ("person", -150.0, "clock", "7 o'clock person!"),
        ("vehicle", 90.0, "clock", "3 o'clock vehicle!"),
        ("moving object", 180.0, "words", "Behind object!"),
        ("red bicycle", -45.0, "words", "Front left bike!"),
    ],
)
def test_urgent_sentence_is_direction_and_what(label, yaw, directions, expected):
    sentence = urgent_sentence(label=label, yaw=yaw, directions=directions)
    assert sentence == expected
    assert len(sentence.split()) <= 5


def test_escalation_says_only_what_changed():
    smith = Wordsmith()
    config = SpeechConfig()
    kwargs = dict(who="person in red", label="person", motion="coming", distance_sigma_m=0.3, config=config)
    first = smith.word("e1", yaw=150.0, distance_m=6.0, urgent=False, **kwargs)
    assert first.text == "5 o'clock, person in red coming at six metres." and first.direction == "5 o'clock"
    closer = smith.word("e1", yaw=152.0, distance_m=2.2, urgent=False, **kwargs)
    assert closer.text == "Closer, two metres." and closer.direction == ""
    assert closer.full == "5 o'clock, person in red coming at two metres.", "said instead if e1 was never heard"
    moved = smith.word("e1", yaw=120.0, distance_m=2.0, urgent=False, **kwargs)
    assert moved.text == "Now 4 o'clock, two metres." and moved.direction == "Now 4 o'clock"
    urgent = smith.word("e1", yaw=120.0, distance_m=1.0, urgent=True, **kwargs)
    assert urgent.text == "4 o'clock person!" and urgent.direction == "4 o'clock"
    other = smith.word("e2", yaw=-90.0, distance_m=3.0, urgent=False, **kwargs)
    assert other.text.startswith("9 o'clock, "), "another entity starts with its full form"


def test_motion_phrase_names_whom_when_it_is_not_the_wearer():
    assert motion_phrase("approaching fast") == "coming"
    assert motion_phrase("approaching fast", verbose=True) == "approaching you fast"
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


def _threat(entity: str, yaw: float, ttc: float | None, *, urgent: bool = False, risk: float = 0.7,
            read_at: float = 100.0) -> Utterance:
    where = f"{int(clock_hour(yaw))} o'clock"
    short = f"{where} person!"
    text = short if urgent else f"{where}, person in red coming, four metres."
    return Utterance(text, entity, risk, urgent, read_at, yaw=yaw, direction=where, where=where, short=short,
                     time_to_contact_s=ttc)


def test_queue_urgent_interrupts_calmer_speech_but_keeps_pending_directions():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(_threat("e1", 60.0, 2.5))
    queue.put(_threat("e2", -60.0, 2.8))
    speaking = queue.get()
    assert speaking.entity_id == "e1" and not queue.interrupt.is_set()
    queue.put(_threat("e3", 180.0, 0.4, urgent=True, risk=0.95))
    assert queue.interrupt.is_set() and queue.cut_current, "calmer speech in progress must be cut"
    queue.finished(speaking, heard=set())  # cut before its direction was over
    urgent = queue.get()
    assert urgent.entity_id == "e3"
    assert [c.entity_id for c in urgent.carried] == ["e1"], "the cut direction rides on the urgent one"
    assert urgent.carried[0].text == "Also 2 o'clock person!" and urgent.carried[0].direction == "Also 2 o'clock"
    queue.finished(urgent, heard={"e3", "e1"})
    assert queue.get().entity_id == "e2", "a pending direction is not cleared by the interruption"
    assert queue.dropped_full == 0 and queue.carried == 1


def test_interruption_after_the_direction_carries_nothing():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(_threat("e1", 60.0, 2.5))
    speaking = queue.get()
    queue.put(_threat("e3", 180.0, 0.4, urgent=True, risk=0.95))
    queue.finished(speaking, heard={"e1"})  # cut after "2 o'clock" was heard
    assert queue.get().carried == []
    assert queue.heard("e1")


def test_cut_with_nothing_pending_requeues_the_cut_utterance():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(_threat("e1", 60.0, 2.5))
    speaking = queue.get()
    queue.finished(speaking, heard=set())
    assert queue.get() is speaking


@pytest.mark.parametrize(("speaking", "arriving", "heard_before", "cuts"), [
    (_threat("e1", 60.0, 2.5), _threat("e2", -60.0, 2.8), set(), True),  # a new direction
    (_threat("e1", 60.0, 2.5), _threat("e2", -60.0, 2.8), {"e2"}, False),  # a repeat waits its turn
    (_threat("e1", 60.0, 2.5), _threat("e1", 60.0, 2.0), set(), False),  # the same entity's update waits
    (_threat("e1", 60.0, 0.5, urgent=True, risk=0.9), _threat("e2", -60.0, 2.8), set(), False),  # urgent: never cut
])
def test_a_calmer_new_direction_cuts_calmer_speech_without_an_earcon(speaking, arriving, heard_before, cuts):
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    for entity in heard_before:
        queue.put(_threat(entity, 0.0, 3.0))
        queue.finished(queue.get(), heard={entity})
    queue.put(speaking)
    assert queue.get() is speaking
    queue.put(arriving)
    assert queue.interrupt.is_set() == cuts and queue.cut_current == cuts
    assert queue.interrupting is None, "no urgent earcon over the speech for a calmer alert"


def test_a_new_urgent_direction_cuts_an_urgent_repeat():
    """Two threats: the first one's urgent repeat must not hold back the second one's direction
    (it is cut at once: its direction is one the wearer has heard)."""
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(_threat("e1", 60.0, 0.5, urgent=True, risk=0.9))
    queue.finished(queue.get(), heard={"e1"})
    queue.put(_threat("e1", 60.0, 0.4, urgent=True, risk=0.9))
    repeat = queue.get()
    assert repeat.entity_id == "e1" and queue.heard("e1")
    queue.put(_threat("e1", 60.0, 0.3, urgent=True, risk=0.9))  # e1 again: the repeat is not cut for it
    assert not queue.cut_current
    queue.put(_threat("e2", -60.0, 0.6, urgent=True, risk=0.95))
    assert queue.interrupt.is_set() and queue.interrupting.entity_id == "e2" and queue.cut_current
    assert queue.cut_at_once, "a direction the wearer has heard is not protected from the cut"
    queue.finished(repeat, heard={"e1"})
    nxt = queue.get()
    assert nxt.entity_id == "e2" and nxt.carried == []
    queue.finished(nxt, heard={"e2"})
    assert queue.get().entity_id == "e1", "the first threat's update still follows"


@pytest.mark.parametrize(("heard_first", "urgent", "at_once"), [
    (True, True, True),  # an urgent repeat of a heard direction: cut at once
    (True, False, True),  # a calmer repeat: the same
    (False, True, False),  # calmer speech saying a direction for the first time: only once it is over
    (False, False, False),
])
def test_only_a_repeated_direction_is_cut_inside_its_direction(heard_first, urgent, at_once):
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    if heard_first:
        queue.put(_threat("e1", 60.0, 2.5))
        queue.finished(queue.get(), heard={"e1"})
    queue.put(_threat("e1", 60.0, 0.4, urgent=heard_first and urgent, risk=0.9 if heard_first and urgent else 0.7))
    queue.get()
    queue.put(_threat("e2", -60.0, 0.5, urgent=urgent, risk=0.95 if urgent else 0.7))
    assert queue.cut_current
    assert queue.cut_at_once == at_once
    queue.get()
    assert not queue.cut_at_once, "the next utterance starts with no cut pending"


def test_urgent_does_not_cut_urgent():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    queue.put(_threat("e1", 60.0, 0.5, urgent=True, risk=0.9))
    queue.get()
    queue.put(_threat("e2", -60.0, 0.3, urgent=True, risk=0.95))
    assert queue.interrupt.is_set() and queue.interrupting.entity_id == "e2", "its earcon sounds at once"
    assert not queue.cut_current, "but urgent speech is not cut"


def test_several_threats_nearest_time_to_contact_first():
    queue = SpeechQueue(SpeechConfig(queue_size=8), clock=_Clock())
    queue.put(_threat("far", 30.0, 2.9, risk=0.9))
    queue.put(_threat("unknown", 90.0, None, risk=0.95))
    queue.put(_threat("near", -120.0, 0.8, risk=0.6))
    queue.put(_threat("mid", 150.0, 1.6, risk=0.7))
    order = []
    while (utterance := queue.get()) is not None:
        order.append(utterance.entity_id)
        queue.finished(utterance, heard={utterance.entity_id})
    assert order == ["near", "mid", "far", "unknown"]


def test_time_to_contact_counts_down_while_an_alert_waits():
    # Seen on a held-out composite (20261205): "10 o'clock" (1.8 s to contact, decided at 3.5 s)
    # waited behind a newer "7 o'clock" (1.5 s, decided at 4.5 s) whose contact was later, and
    # went stale unheard.
    clock = _Clock()
    queue = SpeechQueue(SpeechConfig(queue_size=8), clock=clock)
    queue.put(_threat("e1", 0.0, 3.0))
    speaking = queue.get()
    queue.put(_threat("early", -60.0, 1.8, read_at=100.0))
    queue.put(_threat("late", 150.0, 1.5, read_at=101.0))
    clock.now = 101.0
    queue.finished(speaking, heard={"e1"})
    assert queue.get().entity_id == "early", "contact at 101.8 s comes before contact at 102.5 s"


def test_each_direction_once_before_any_repeat():
    queue = SpeechQueue(SpeechConfig(queue_size=8), clock=_Clock())
    queue.put(_threat("e1", 60.0, 1.0))
    first = queue.get()
    queue.finished(first, heard={"e1"})
    queue.put(_threat("e1", 60.0, 0.5, urgent=True, risk=0.95))  # e1 again, nearer and urgent
    queue.put(_threat("e2", -90.0, 2.5))  # e2 never heard
    assert queue.get().entity_id == "e2", "e2's direction is said once before e1's is repeated"
    assert queue.get().entity_id == "e1"


def test_escalation_of_an_unheard_entity_is_said_in_full():
    queue = SpeechQueue(SpeechConfig(), clock=_Clock())
    full = "2 o'clock, person in red coming, two metres."
    queue.put(Utterance("Closer, two metres.", "e1", 0.7, False, 100.0, yaw=60.0, direction="",
                        where="2 o'clock", short="2 o'clock person!", full=full))
    spoken = queue.get()
    assert spoken.text == full and spoken.direction == "2 o'clock"
    queue.finished(spoken, heard={"e1"})
    queue.put(Utterance("Closer, one metre.", "e1", 0.75, False, 100.0, yaw=60.0, direction="",
                        where="2 o'clock", short="2 o'clock person!", full=full))
    assert queue.get().text == "Closer, one metre.", "heard before: the change alone"


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
