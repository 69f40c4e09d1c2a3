"""What the wearer hears, measured on real espeak-ng audio at the shipped default rate."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from vigil360.config import SpeechConfig
from vigil360.edge.alert_audio import first_audible_s, last_audible_s, render_alert
from vigil360.edge.announce import Carried, SpeechQueue, Utterance, compose_sentence, motion_phrase, urgent_sentence
from vigil360.edge.appearance_vote import compact_phrase
from vigil360.edge.speech import EspeakLibrary, Speaker, Synthesizer, read_wav

CONFIG = SpeechConfig()
# Every direction either style can say: 12 clock hours, 8 sectors.
DIRECTIONS = [("clock", 30.0 * h) for h in range(-5, 7)] + [("words", 45.0 * k) for k in range(-3, 5)]
LABELS = ("person", "vehicle", "small object", "moving object")


@pytest.fixture(scope="module")
def synth() -> EspeakLibrary:
    return EspeakLibrary(CONFIG.voice, CONFIG.rate_wpm)


def _audible_s(synth: Synthesizer, text: str) -> float:
    samples = synth.synthesize(text)
    return last_audible_s(samples, synth.sample_rate) - first_audible_s(samples, synth.sample_rate)


def test_urgent_form_is_at_most_five_words_and_1_2_s(synth):
    worst = max((_audible_s(synth, text), text) for style, yaw in DIRECTIONS for label in LABELS
                if (text := urgent_sentence(label=label, yaw=yaw, directions=style)))
    assert worst[0] <= 1.2, worst
    assert all(len(urgent_sentence(label=label, yaw=yaw, directions=style).split()) <= 5
               for style, yaw in DIRECTIONS for label in LABELS)


def test_normal_form_is_at_most_3_s(synth):
    # The longest colour name espeak says ("orange"/"purple") and the longest motion word.
    texts = [compose_sentence(who=compact_phrase("purple", "orange", label), label=label,
                              motion=motion_phrase("crossing in front"), yaw=yaw, distance_m=distance,
                              directions=style)
             for style, yaw in DIRECTIONS for label in LABELS for distance in (1.0, 3.0)]
    worst = max((_audible_s(synth, text), text) for text in texts)
    assert worst[0] <= 3.0, worst


def test_direction_is_heard_first_and_early(synth):
    """Word timings from espeak-ng: the direction phrase ends well before the sentence does."""
    text = compose_sentence(who="person in red", label="person", motion="coming", yaw=150.0, distance_m=3.0)
    utterance = Utterance(text, "e1", 0.7, yaw=150.0, direction="5 o'clock", where="5 o'clock")
    audio = render_alert(utterance, synth, CONFIG)
    assert audio.earcon_s == 0.0
    assert 0.1 < audio.direction_onset_s < 0.35, "speech starts right after the earcon"
    heard = audio.heard_at_s["e1"]
    assert audio.direction_onset_s + 0.3 < heard < audio.direction_onset_s + 1.0
    assert heard < audio.end_s - 1.0, "the rest of the sentence follows the direction"


def test_word_timings_match_the_program_fallback(synth):
    """The fallback for engines without word events (synthesise the phrase alone) agrees with
    espeak-ng's own word positions within a comma's pause."""

    class NoEvents(Synthesizer):
        sample_rate = synth.sample_rate

        def synthesize(self, text: str) -> np.ndarray:
            return synth.synthesize(text)

    utterance = Utterance("7 o'clock person!", "e1", 0.9, True, yaw=-150.0, direction="7 o'clock")
    timed = render_alert(utterance, synth, CONFIG).heard_at_s["e1"]
    measured = render_alert(utterance, NoEvents(), CONFIG).heard_at_s["e1"]
    assert abs(timed - measured) < 0.25


def test_carried_direction_is_rendered_after_the_urgent_one(synth):
    utterance = Utterance("7 o'clock person!", "e2", 0.95, True, yaw=-150.0, direction="7 o'clock")
    utterance.carried.append(Carried("e1", "Also 2 o'clock person!", 60.0, "Also 2 o'clock"))
    audio = render_alert(utterance, synth, CONFIG)
    assert audio.heard_at_s["e2"] < audio.heard_at_s["e1"] < audio.end_s
    # The carried part comes from the right (2 o'clock): right louder than left there.
    start = int(audio.heard_at_s["e2"] * audio.sample_rate) + audio.sample_rate // 4
    tail = audio.samples[start:].astype(np.float64)
    assert np.sqrt(np.mean(tail[:, 1] ** 2)) > 1.2 * np.sqrt(np.mean(tail[:, 0] ** 2))


def test_worker_reports_heard_directions_to_the_queue(tmp_path):
    config = SpeechConfig(output="wav")
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue, wav_dir=tmp_path).start()
    queue.put(Utterance("2 o'clock person!", "e1", 0.9, True, time.perf_counter(), yaw=60.0,
                        direction="2 o'clock"))
    speaker.close(drain_s=30.0)
    assert queue.heard("e1") and queue.current is None
    (path,) = tmp_path.glob("*.wav")
    samples, rate = read_wav(path)
    assert samples.shape[1] == 2 and len(samples) / rate < 1.8, "earcon + urgent sentence"


class _Broken(Synthesizer):
    def synthesize(self, text: str) -> np.ndarray:
        raise RuntimeError("synthesis failed")


def test_a_failed_synthesis_does_not_count_as_heard(tmp_path):
    """Fault injected: the engine fails; the direction is not marked heard (so a later escalation
    about the entity is said in full), and the failing utterance is not retried."""
    config = SpeechConfig(output="wav", stale_after_s=60.0)
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue, wav_dir=tmp_path, synthesizer=_Broken())
    queue.put(Utterance("2 o'clock person!", "e1", 0.9, True, time.perf_counter(), yaw=60.0, direction="2 o'clock"))
    taken = queue.get()
    with pytest.raises(RuntimeError):
        speaker._speak(taken)
    assert not queue.heard("e1") and queue.current is None
    assert queue.pending() == 0


def test_device_path_streams_the_earcon_before_the_speech(tmp_path, monkeypatch):
    """A stand-in `aplay` on PATH records the raw stream: the earcon comes first, then speech,
    in stereo, and the direction counts as heard once played to the end."""
    from vigil360.edge import speech
    from vigil360.edge.alert_audio import earcon_samples

    player = tmp_path / "bin" / "aplay"
    player.parent.mkdir()
    player.write_text(f'#!/bin/sh\ncat > "{tmp_path}/played_$$.raw"\n')
    player.chmod(0o755)
    monkeypatch.setenv("PATH", f"{player.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(speech, "audio_device_available", lambda: True)
    config = SpeechConfig(output="device")
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue).start()
    queue.put(Utterance("7 o'clock person!", "e1", 0.95, True, time.perf_counter(), yaw=-150.0,
                        direction="7 o'clock"))
    speaker.close(drain_s=30.0)
    assert not speaker.errors and queue.heard("e1")
    (raw,) = tmp_path.glob("played_*.raw")
    stream = np.frombuffer(raw.read_bytes(), dtype=np.int16).reshape(-1, 2)
    tone = earcon_samples(-150.0, speaker.synth.sample_rate, True, config)
    assert np.array_equal(stream[: len(tone)], tone), "the earcon is the first thing played"
    assert len(stream) > len(tone) + speaker.synth.sample_rate // 2, "speech follows"
