"""Offline speech: real espeak-ng audio, written by the worker thread, never silently missing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vigil360.config import SpeechConfig
from vigil360.edge import speech
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.speech import EspeakLibrary, Speaker, build_synthesizer, read_wav
from vigil360.errors import UserError


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


def test_espeak_library_synthesises_audible_speech():
    synth = EspeakLibrary("en", 185)
    samples = synth.synthesize("Person approaching you fast, 5 o'clock, one metre.")
    assert samples.dtype == np.int16
    assert samples.size > synth.sample_rate * 0.5, "a sentence lasts more than half a second"
    assert _rms(samples) > 100.0
    short = synth.synthesize("Hi.")
    assert 0 < short.size < samples.size, "longer text, longer audio"


def test_speaker_writes_non_silent_wav_off_the_calling_thread(tmp_path):
    config = SpeechConfig(output="wav")
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue, wav_dir=tmp_path).start()
    queue.put(
        Utterance(
            "Person in a red top staying close to you, 6 o'clock.",
            "e3",
            0.7,
            frame_read_at=time.perf_counter(),
        )
    )
    speaker.close(drain_s=10.0)
    files = sorted(tmp_path.glob("*.wav"))
    assert len(files) == 1 and "e3" in files[0].name
    samples, rate = read_wav(files[0])
    assert rate == speaker.synth.sample_rate
    assert _rms(samples) > 100.0
    assert len(speaker.spoken) == 1 and not speaker.errors


def test_device_output_without_a_device_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "audio_device_available", lambda: False)
    with pytest.raises(UserError, match="no audio device"):
        Speaker(SpeechConfig(output="device"), SpeechQueue(SpeechConfig()), wav_dir=tmp_path)


def test_auto_output_falls_back_to_wav_without_a_device(tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "audio_device_available", lambda: False)
    speaker = Speaker(SpeechConfig(output="auto"), SpeechQueue(SpeechConfig()), wav_dir=tmp_path)
    assert speaker.output == "wav"


def test_no_backend_is_an_error_not_silence(monkeypatch):
    def broken(*_args, **_kwargs):
        raise UserError("library broken")

    monkeypatch.setattr(speech.EspeakLibrary, "__init__", broken)
    monkeypatch.setattr(speech.shutil, "which", lambda _name: None)
    with pytest.raises(UserError, match="no speech backend"):
        build_synthesizer(SpeechConfig())


def test_fallback_to_program_is_announced(monkeypatch):
    def broken(*_args, **_kwargs):
        raise UserError("library broken")

    class FakeProgram(speech.Synthesizer):
        name = "espeak-ng (program)"

        def __init__(self, *_args) -> None:
            pass

    monkeypatch.setattr(speech.EspeakLibrary, "__init__", broken)
    monkeypatch.setattr(speech, "EspeakProgram", FakeProgram)
    said: list[str] = []
    synth = build_synthesizer(SpeechConfig(), announce=said.append)
    assert isinstance(synth, FakeProgram)
    assert said and "using the espeak-ng program" in said[0]
