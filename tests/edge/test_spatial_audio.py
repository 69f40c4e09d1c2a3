"""Alerts heard from their direction: measured on the stereo WAV the speech worker writes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vigil360.config import SpeechConfig
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.spatial_audio import earcon, render_stereo, to_int16
from vigil360.edge.speech import EspeakLibrary, Speaker, read_wav, write_wav

RATE = 22050


def _itd_samples(stereo: np.ndarray, max_lag: int = 40) -> int:
    """Lag (samples) of the right channel behind the left one, by cross-correlation: negative
    when the right ear hears first."""
    left, right = stereo[:, 0].astype(np.float64), stereo[:, 1].astype(np.float64)
    lags = np.arange(-max_lag, max_lag + 1)
    core = slice(max_lag, len(left) - max_lag)
    scores = [np.dot(left[core], np.roll(right, -lag)[core]) for lag in lags]
    return int(lags[int(np.argmax(scores))])


def _ild_db(stereo: np.ndarray) -> float:
    """Right minus left level, dB."""
    rms = np.sqrt(np.mean(stereo.astype(np.float64) ** 2, axis=0))
    return float(20 * np.log10(rms[1] / rms[0]))


@pytest.fixture(scope="module")
def speech_wavs(tmp_path_factory):
    """The worker's own WAVs for one sentence said from 3, 9, 12 and 6 o'clock (no earcon)."""
    folder = tmp_path_factory.mktemp("spatial")
    config = SpeechConfig(output="wav", spatial="stereo", earcons=False)
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue, wav_dir=folder).start()
    for entity, yaw in (("e3", 90.0), ("e9", -90.0), ("e12", 0.0), ("e6", 180.0)):
        queue.put(Utterance("Person coming.", entity, 0.7, frame_read_at=time.perf_counter(), yaw=yaw))
        assert queue.pending() <= 4
    speaker.close(drain_s=30.0)
    assert not speaker.errors
    return {path.name.split("_")[1]: read_wav(path)[0] for path in sorted(folder.glob("*.wav"))}


def test_three_oclock_is_louder_and_earlier_on_the_right(speech_wavs):
    stereo = speech_wavs["e3"]
    assert stereo.ndim == 2 and stereo.shape[1] == 2
    assert _itd_samples(stereo) < 0, "the right ear hears it first"
    assert _itd_samples(stereo) * 1e6 / RATE > -800, "no more than a head's width of delay"
    assert _ild_db(stereo) > 3.0


def test_nine_oclock_is_louder_and_earlier_on_the_left(speech_wavs):
    stereo = speech_wavs["e9"]
    assert _itd_samples(stereo) > 0
    assert _ild_db(stereo) < -3.0


def test_ahead_and_behind_are_centred(speech_wavs):
    for name in ("e12", "e6"):
        assert _itd_samples(speech_wavs[name]) == 0
        assert abs(_ild_db(speech_wavs[name])) < 0.5


def _pulse_pitches(mono: np.ndarray, rate: int) -> list[float]:
    """Dominant frequency of each earcon pulse (pulses are separated by silence)."""
    window = int(0.003 * rate)
    envelope = np.convolve(np.abs(mono), np.ones(window) / window, mode="same")
    loud = envelope > 0.05 * envelope.max()
    edges = np.flatnonzero(np.diff(loud.astype(int)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    pitches = []
    for start, end in zip(starts, ends, strict=False):
        if end - start < rate * 0.01:
            continue
        spectrum = np.abs(np.fft.rfft(mono[start:end], n=8192))
        pitches.append(float(np.fft.rfftfreq(8192, 1 / rate)[np.argmax(spectrum)]))
    return pitches


def test_front_and_back_earcons_differ_by_pitch_contour(tmp_path):
    """Stereo gives 30 and 150 degrees the same cues; the earcon tells them apart: rising ahead,
    falling and lower behind. Measured on the WAV of the rendered earcon."""
    contours = {}
    for name, yaw in (("front", 30.0), ("back", 150.0)):
        path = tmp_path / f"{name}.wav"
        write_wav(path, to_int16(render_stereo(earcon(yaw, RATE, urgent=False), RATE, yaw)), RATE)
        stereo, rate = read_wav(path)
        contours[name] = _pulse_pitches(stereo.astype(np.float64).mean(axis=1), rate)
    front, back = contours["front"], contours["back"]
    assert len(front) == 2 and len(back) == 2
    assert front[1] > front[0] * 1.2, f"ahead rises: {front}"
    assert back[1] < back[0] / 1.2, f"behind falls: {back}"
    assert max(back) < min(front) * 1.01, "behind is lower"


def test_urgent_earcon_has_three_pulses():
    pitches = _pulse_pitches(earcon(0.0, RATE, urgent=True), RATE)
    assert len(pitches) == 3


def test_spatial_off_writes_mono(tmp_path):
    config = SpeechConfig(output="wav", spatial="off")
    queue = SpeechQueue(config)
    speaker = Speaker(config, queue, wav_dir=tmp_path, synthesizer=EspeakLibrary("en", config.rate_wpm)).start()
    queue.put(Utterance("Person coming.", "e1", 0.7, frame_read_at=time.perf_counter(), yaw=90.0))
    speaker.close(drain_s=30.0)
    (path,) = tmp_path.glob("*.wav")
    samples, _ = read_wav(path)
    assert samples.ndim == 1
