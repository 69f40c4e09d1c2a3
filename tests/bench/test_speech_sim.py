"""The speech queue in simulated time with real espeak-ng audio: what the ear gets, and when."""

from __future__ import annotations

import pytest

from vigil360.bench.speech_sim import Decision, simulate
from vigil360.config import SpeechConfig
from vigil360.edge.announce import Utterance, Wordsmith
from vigil360.edge.speech import EspeakLibrary

CONFIG = SpeechConfig()


@pytest.fixture(scope="module")
def synth() -> EspeakLibrary:
    return EspeakLibrary(CONFIG.voice, CONFIG.rate_wpm)


def _decision(smith: Wordsmith, entity: str, time_s: float, yaw: float, distance: float, ttc: float,
              urgent: bool = False) -> Decision:
    wording = smith.word(entity, who="person in red", label="person", motion="coming", yaw=yaw,
                         distance_m=distance, distance_sigma_m=0.3, urgent=urgent, config=CONFIG)
    return Decision(time_s, Utterance(wording.text, entity, 0.9 if urgent else 0.6, urgent, time_s, yaw=yaw,
                                      direction=wording.direction, where=wording.where, short=wording.short,
                                      full=wording.full, time_to_contact_s=ttc))


def test_urgent_earcon_sounds_at_once_and_the_calmer_direction_is_never_cut(synth):
    smith = Wordsmith()
    decisions = [_decision(smith, "e1", 1.0, 60.0, 5.0, 2.5),
                 _decision(smith, "e2", 1.1, -150.0, 2.0, 0.4, urgent=True)]
    played, queue = simulate(decisions, synth, CONFIG, output_latency_s=0.0)
    calm, urgent = played
    assert calm.entity_id == "e1" and calm.cut, "the calmer sentence is cut for the urgent one"
    assert "e1" in calm.heard_at_s and calm.end_s == pytest.approx(calm.heard_at_s["e1"]), \
        "but only once '2 o'clock' was heard"
    assert urgent.entity_id == "e2" and urgent.text == "7 o'clock person!" and not urgent.cut
    assert 1.1 < urgent.earcon_s < calm.end_s, "the urgent earcon sounds over the calmer speech, before the cut"
    assert calm.end_s <= urgent.direction_onset_s
    assert queue.heard("e1") and queue.heard("e2") and queue.carried == 0


def test_same_entity_urgent_also_waits_for_the_direction(synth):
    smith = Wordsmith()
    decisions = [_decision(smith, "e1", 1.0, 60.0, 5.0, 2.5),
                 _decision(smith, "e1", 1.3, 60.0, 2.0, 0.4, urgent=True)]
    played, _ = simulate(decisions, synth, CONFIG)
    calm, urgent = played
    assert calm.cut and "e1" in calm.heard_at_s
    assert urgent.text == "2 o'clock person!" and urgent.earcon_s < calm.end_s


def test_two_threats_each_direction_once_nearest_first(synth):
    smith = Wordsmith()
    decisions = [_decision(smith, "far", 2.0, 90.0, 5.0, 2.0), _decision(smith, "near", 2.0, -90.0, 3.0, 0.9),
                 _decision(smith, "near", 2.4, -90.0, 2.0, 0.4, urgent=True)]
    played, _ = simulate(decisions, synth, CONFIG)
    order = [p.entity_id for p in played]
    assert order[:2] == ["near", "far"], "nearest time to contact first; the repeat of 'near' waits for 'far'"
    heard = {entity: at for p in played for entity, at in p.heard_at_s.items()}
    assert set(heard) == {"near", "far"}
    assert heard["near"] < heard["far"]


def test_decision_to_earcon_and_direction_onset(synth):
    played, _ = simulate([_decision(Wordsmith(), "e1", 3.0, 180.0, 2.0, 0.3, urgent=True)], synth, CONFIG,
                         output_latency_s=0.0)
    (alert,) = played
    assert 3.0 < alert.earcon_s < alert.direction_onset_s < alert.heard_at_s["e1"] < alert.end_s
    assert alert.words == 3


def test_a_second_threat_does_not_wait_for_the_first_ones_description(synth):
    # Two threats from different sides (dev seed 7003, pair 1): the first alert's direction is
    # heard, then its description runs on; the second direction must not wait for it to end.
    smith = Wordsmith()
    decisions = [_decision(smith, "first", 1.9, -120.0, 9.0, 2.3),
                 _decision(smith, "second", 2.8, -150.0, 5.0, 2.6)]
    played, queue = simulate(decisions, synth, CONFIG)
    first, second = played
    assert first.entity_id == "first" and first.cut, "the first one's description gives way to a new direction"
    assert first.end_s == pytest.approx(max(first.heard_at_s["first"], 2.8 + 0.02)), \
        "but only once its own direction was heard"
    assert second.entity_id == "second" and queue.heard("first") and queue.heard("second")
    assert second.heard_at_s["second"] - 2.8 < 1.2, "the second direction is heard about a second after its decision"
    assert queue.carried == 0, "a direction that was heard is not repeated"


def test_what_arrives_while_a_direction_finishes_is_queued_before_the_next_pick(synth):
    # Seen on composite 20261203 pair 1: an urgent repeat of "first" defers the cut of its calmer
    # sentence to the end of its direction; "second" arrives in between and must be said next
    # (never heard), not after the repeat.
    smith = Wordsmith()
    decisions = [_decision(smith, "first", 2.8, 180.0, 5.0, 2.2),
                 _decision(smith, "first", 2.97, 180.0, 4.0, 2.0, urgent=True),
                 _decision(smith, "second", 3.37, 150.0, 4.0, 1.3)]
    played, queue = simulate(decisions, synth, CONFIG, output_latency_s=0.0)
    assert played[0].entity_id == "first" and played[0].cut and played[0].end_s > 3.37
    assert played[1].entity_id == "second", "the unheard direction comes before a repeat"
    assert played[1].heard_at_s["second"] - 3.37 < 1.5
    assert queue.heard("first") and queue.heard("second")


def test_a_second_threat_cuts_the_first_ones_repeat_at_once(synth):
    # Composite 20261207 pair 2: "4 o'clock" was heard, its urgent repeat starts, and 0.1 s later
    # a second threat at 9 o'clock is decided. Its direction must not wait for "4 o'clock" again.
    smith = Wordsmith()
    decisions = [_decision(smith, "first", 2.17, 127.0, 6.5, 2.0),
                 _decision(smith, "first", 4.63, 130.0, 2.8, 0.8, urgent=True),
                 _decision(smith, "second", 4.73, -98.0, 5.5, 0.7, urgent=True)]
    played, queue = simulate(decisions, synth, CONFIG, output_latency_s=0.0)
    assert [p.entity_id for p in played[:3]] == ["first", "first", "second"]
    repeat, second = played[1], played[2]
    assert repeat.cut and repeat.end_s == pytest.approx(4.73 + 0.02), "cut within one chunk of the decision"
    assert second.direction_onset_s - 4.73 < 0.4
    assert queue.heard("second")
    assert second.heard_at_s["first"] > second.heard_at_s["second"], \
        "the cut repeat's direction goes on after the new one ('Also 4 o'clock person!')"
