"""One utterance as the wearer hears it: earcon, speech and carried directions, each from its
direction, with the times at which each direction has been heard.

The same function serves the speech worker (which plays or writes the samples) and the alerts
bench (which uses only the timeline), so the bench measures the audio the wearer gets.

Timeline of an utterance: [earcon][40 ms][main sentence][carried: "Also 2 o'clock person."]...
The earcon is handed to the player before any speech is synthesised; synthesis (a few ms a
sentence) runs while it plays, so speech follows the earcon without a gap of its own.
A direction counts as heard when the audio has played up to the start of the first word after
the direction phrase (espeak-ng's word events), or, for an engine without word timings, up to
the end of the phrase synthesised on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vigil360.config import SpeechConfig
from vigil360.edge.announce import Utterance
from vigil360.edge.spatial_audio import EARCON_GAP_S, earcon, render_stereo, to_int16

if TYPE_CHECKING:  # the speech worker imports this module
    from vigil360.edge.speech import Synthesizer, WordTiming

# Speech samples at or above this level (int16) count as audible (espeak-ng's noise floor is ~0).
AUDIBLE_LEVEL = 200


@dataclass
class AlertAudio:
    samples: np.ndarray  # int16, (N, 2) stereo or (N,) mono
    sample_rate: int
    earcon_s: float | None  # earcon onset (0.0) or None without one
    direction_onset_s: float | None  # first audible sample of the spoken direction
    heard_at_s: dict[str, float] = field(default_factory=dict)  # entity -> direction fully played
    end_s: float = 0.0  # last audible sample
    speech_start_s: float = 0.0  # where speech begins (after the earcon and its gap)
    earcon_ms: float | None = None  # compute time until the earcon was ready
    render_ms: float = 0.0  # compute time until all of it was ready (synthesis + rendering)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def first_audible_s(samples: np.ndarray, sample_rate: int, after_s: float = 0.0) -> float | None:
    start = int(after_s * sample_rate)
    loud = np.flatnonzero(np.abs(samples[start:].astype(np.int32)) >= AUDIBLE_LEVEL)
    return None if loud.size == 0 else (start + int(loud[0])) / sample_rate


def last_audible_s(samples: np.ndarray, sample_rate: int) -> float:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= AUDIBLE_LEVEL)
    return 0.0 if loud.size == 0 else (int(loud[-1]) + 1) / sample_rate


def phrase_end_s(synth: Synthesizer, text: str, phrase: str, samples: np.ndarray,
                 words: list[WordTiming] | None) -> float:
    """Where the leading `phrase` of `text` has been said: its last audible sample before the next
    word starts (the pause after it does not count), or the end of the phrase synthesised alone."""
    rate = synth.sample_rate
    if not phrase:
        return last_audible_s(samples, rate)
    if words is not None:
        later = [w.start_s for w in words if w.text_position >= len(phrase)]
        if not later:
            return last_audible_s(samples, rate)
        return last_audible_s(samples[: int(min(later) * rate)], rate)
    return last_audible_s(synth.synthesize(phrase), rate)


def earcon_samples(yaw: float, sample_rate: int, urgent: bool, config: SpeechConfig) -> np.ndarray:
    """The earcon from `yaw` as int16 (stereo unless spatial audio is off), without the gap."""
    gain = 1.0 if urgent else 10.0 ** (config.ducking_db / 20.0)
    tone = earcon(yaw, sample_rate, urgent) * gain
    return to_int16(render_stereo(tone, sample_rate, yaw) if config.spatial == "stereo" else tone)


def render_alert(utterance: Utterance, synth: Synthesizer, config: SpeechConfig,
                 on_earcon: Callable[[np.ndarray], None] | None = None) -> AlertAudio:
    """The utterance's audio and timeline (see the module docstring).

    `on_earcon(samples)` receives the earcon (with its trailing gap) as soon as it exists, before
    any speech is synthesised, so a player can start it at once; speech synthesis then runs
    while the earcon plays."""
    start = time.perf_counter()
    rate = synth.sample_rate
    stereo = config.spatial == "stereo"
    gain = 1.0 if utterance.urgent else 10.0 ** (config.ducking_db / 20.0)

    def placed(mono: np.ndarray, yaw: float | None) -> np.ndarray:
        if not stereo:
            return mono
        return render_stereo(mono, rate, yaw) if yaw is not None else np.stack([mono, mono], axis=1)

    pieces: list[np.ndarray] = []
    earcon_s = earcon_ms = None
    if config.earcons and utterance.yaw is not None and not utterance.earcon_played:
        tone = placed(earcon(utterance.yaw, rate, utterance.urgent) * gain, utterance.yaw)
        gap = np.zeros((int(EARCON_GAP_S * rate), 2) if stereo else int(EARCON_GAP_S * rate))
        first = to_int16(np.concatenate([tone, gap]))
        earcon_s, earcon_ms = 0.0, (time.perf_counter() - start) * 1000.0
        if on_earcon is not None:
            on_earcon(first)
        pieces.append(first)
    cursor = sum(len(piece) for piece in pieces) / rate
    parts = [(utterance.text, utterance.direction, utterance.yaw, utterance.entity_id)]
    parts += [(c.text, c.direction, c.yaw, c.entity_id) for c in utterance.carried]
    heard: dict[str, float] = {}
    onset = None
    for text, direction, yaw, entity_id in parts:
        samples, words = synth.synthesize_timed(text)
        said = phrase_end_s(synth, text, direction if text.startswith(direction) else "", samples, words)
        if onset is None and direction:
            onset = cursor + (first_audible_s(samples, rate) or 0.0)
        heard.setdefault(entity_id, cursor + said)
        pieces.append(to_int16(placed(samples.astype(np.float64) / 32767.0 * gain, yaw)))
        cursor += len(pieces[-1]) / rate
    out = np.concatenate(pieces) if pieces else np.zeros((0, 2) if stereo else 0, np.int16)
    mono = out if out.ndim == 1 else np.abs(out).max(axis=1)
    speech_start = len(pieces[0]) / rate if earcon_s is not None else 0.0
    return AlertAudio(out, rate, earcon_s, onset, heard, last_audible_s(mono, rate), speech_start,
                      earcon_ms, (time.perf_counter() - start) * 1000.0)
