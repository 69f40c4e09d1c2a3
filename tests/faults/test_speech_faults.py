"""Speech faults: the worker survives any error, counts it, and says so when the wearer hears nothing."""

from __future__ import annotations

import subprocess
import threading
import time
import wave

import numpy as np

from vigil360.config import Settings, SpeechConfig
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.events import HealthEvent
from vigil360.edge.loop import EdgeLoop
from vigil360.edge.speech import DEAD_AFTER, Speaker, Synthesizer


class ScriptedSynth(Synthesizer):
    """Raises the given errors in turn (None: speaks a short tone); counts calls under a condition."""

    name = "scripted"
    sample_rate = 16000

    def __init__(self, outcomes: list[BaseException | None], then: BaseException | None = None) -> None:
        self.outcomes = list(outcomes)
        self.then = then
        self.calls = 0
        self.cond = threading.Condition()

    def synthesize(self, text: str) -> np.ndarray:
        with self.cond:
            self.calls += 1
            self.cond.notify_all()
            outcome = self.outcomes.pop(0) if self.outcomes else self.then
        if outcome is not None:
            raise outcome
        return (1000 * np.sin(np.arange(1600) / 5)).astype(np.int16)

    def wait_calls(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.calls >= n, timeout=30), f"synthesiser called {self.calls} < {n}"


def _speaker(tmp_path, synth, said: list[str], start: bool = True) -> Speaker:
    config = SpeechConfig(output="wav", stale_after_s=60.0)
    speaker = Speaker(config, SpeechQueue(config), wav_dir=tmp_path, synthesizer=synth, announce=said.append)
    return speaker.start() if start else speaker


def _say(speaker: Speaker, synth: ScriptedSynth, n: int) -> None:
    """Utterances one at a time, each handed over only after the previous reached the synthesiser."""
    for i in range(n):
        speaker.queue.put(Utterance(f"Alert number {i}.", f"e{i}", 0.7, frame_read_at=time.perf_counter()))
        synth.wait_calls(i + 1)


def test_any_synthesis_error_is_counted_and_the_next_alert_is_still_spoken(tmp_path):
    synth = ScriptedSynth([subprocess.TimeoutExpired("espeak-ng", 2.0), wave.Error("bad header"), None])
    said: list[str] = []
    speaker = _speaker(tmp_path, synth, said)
    _say(speaker, synth, 3)
    speaker.close(drain_s=10.0)
    health = speaker.health()
    assert (health.spoken, health.failures, health.dead) == (1, 2, None)
    assert "TimeoutExpired" in health.last_errors[0] and "bad header" in health.last_errors[1]
    assert len(list(tmp_path.glob("*.wav"))) == 1, "the third alert reached the wearer"
    assert not any("DEAD" in s or "FAILING" in s for s in said), "two failures then a success is not dead"


def test_speech_that_keeps_failing_is_declared_dead_on_the_console_and_recovers(tmp_path):
    synth = ScriptedSynth([OSError(28, "No space left on device")] * DEAD_AFTER + [None])
    said: list[str] = []
    speaker = _speaker(tmp_path, synth, said)
    _say(speaker, synth, DEAD_AFTER)
    # The worker reports before it takes the next utterance; the next call proves it reported.
    speaker.queue.put(Utterance("Back again.", "e9", 0.7, frame_read_at=time.perf_counter()))
    synth.wait_calls(DEAD_AFTER + 1)
    assert any("SPEECH IS FAILING" in s and "No space left" in s for s in said), said
    speaker.close(drain_s=10.0)
    assert speaker.health().dead is None and speaker.health().spoken == 1
    assert said[-1] == "vigil360: speech works again"


def test_a_crash_outside_an_utterance_restarts_the_worker(tmp_path):
    synth = ScriptedSynth([None])
    said: list[str] = []
    speaker = _speaker(tmp_path, synth, said, start=False)  # broken before the worker's first look
    real_get, crashed = speaker.queue.get, threading.Event()

    def get_once_broken(timeout=None):
        if not crashed.is_set():
            crashed.set()
            raise KeyError("queue state")
        return real_get(timeout)

    speaker.queue.get = get_once_broken
    speaker.start()
    _say(speaker, synth, 1)
    # The worker may already be waiting in the real `get` when it is replaced: wait for the crash
    # itself rather than race `close` against the worker's next turn.
    assert crashed.wait(timeout=30)
    speaker.close(drain_s=10.0)
    health = speaker.health()
    assert (health.restarts, health.spoken, health.dead) == (1, 1, None)
    assert "KeyError" in health.last_errors[0]


def test_dead_speech_is_in_the_summary_the_status_and_the_events(tmp_path, blank_source, scripted_perception):
    synth = ScriptedSynth([], then=RuntimeError("audio device vanished"))
    said: list[str] = []
    settings = Settings.model_validate({"speech": {"output": "wav", "stale_after_s": 60.0, "queue_size": 16}})
    speaker = Speaker(settings.speech, SpeechQueue(settings.speech), wav_dir=tmp_path, synthesizer=synth,
                      announce=said.append)
    loop = EdgeLoop(blank_source(60), settings, speaker=speaker, perception=scripted_perception())
    events: list = []
    loop.add_sink(events.append)
    summary = loop.run()
    assert summary.alerts >= DEAD_AFTER + 1, "alerts go on while speech fails"
    assert summary.speech is not None and summary.speech.dead and summary.spoken == 0
    (fault,) = [f for f in summary.faults if f.component == "speech"]
    assert fault.severity == "failed" and "audio device vanished" in fault.message
    status = loop.status()
    assert status.speech.dead and any(f.component == "speech" for f in status.faults)
    health = [e for e in events if isinstance(e, HealthEvent)]
    assert [e.state for e in health if e.component == "speech"][-1] == "failed"
    assert health[-1].component == "loop" and health[-1].state == "ended"
