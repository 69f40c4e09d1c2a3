"""The speech queue in simulated time, with the audio the wearer would hear.

Input: the utterances the loop queued, each at its decision time (the video clock). The real
`SpeechQueue` runs against a simulated clock; each utterance it hands out is rendered by the
real `render_alert` (espeak-ng synthesis with word timings, earcon, stereo), so durations,
direction times and cuts are those of the real audio, without an audio device.

Timing model of one utterance taken from the queue at time `now`:
- the earcon plays from `now + earcon compute time + output latency` (the worker hands the
  earcon to the player before synthesising speech);
- speech follows the earcon; if synthesis took longer than the earcon lasts, it starts later
  by the difference;
- an urgent utterance arriving during speech sounds its earcon over it within one 20 ms chunk
  (the worker's write granularity) plus the earcon's compute time; calmer speech is then cut
  once its direction phrase is over (urgent speech is not), or at once when it repeats a
  direction the wearer has heard for one they have not; the queue learns which directions
  were heard.
Compute times are measured here (label them "loaded machine"); the output latency of a real
device is a parameter, not a measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vigil360.config import SpeechConfig
from vigil360.edge.alert_audio import AlertAudio, earcon_samples, render_alert
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.speech import Synthesizer

CUT_GRANULARITY_S = 0.02


@dataclass
class Decision:
    time_s: float  # when the loop decided (video clock)
    utterance: Utterance


@dataclass
class Played:
    text: str
    entity_id: str
    urgent: bool
    decided_s: float  # when the loop decided it
    taken_s: float  # when the worker took it from the queue
    earcon_s: float | None  # absolute onset of the earcon
    direction_onset_s: float | None  # absolute first audible sample of the spoken direction
    heard_at_s: dict[str, float] = field(default_factory=dict)  # entity -> absolute, directions heard
    end_s: float = 0.0  # absolute: cut or natural end of the audible part
    cut: bool = False
    words: int = 0
    audible_s: float = 0.0  # seconds of audio actually played


def simulate(decisions: list[Decision], synth: Synthesizer, config: SpeechConfig, *,
             output_latency_s: float = 0.02) -> tuple[list[Played], SpeechQueue]:
    """Play `decisions` (sorted or not) through the queue; returns what was played, in order."""
    arrivals = sorted(decisions, key=lambda d: d.time_s)
    clock = {"now": 0.0}
    queue = SpeechQueue(config, clock=lambda: clock["now"])
    played: list[Played] = []
    cache: dict[tuple, AlertAudio] = {}
    overlay_at: dict[int, float] = {}  # id(utterance) -> onset of its earcon played over other speech
    index = 0

    def arrive_until(limit: float, stop_on_interrupt: bool) -> float | None:
        """Queue arrivals up to `limit`; the time of the first one that interrupts, if asked."""
        nonlocal index
        while index < len(arrivals) and arrivals[index].time_s <= limit:
            clock["now"] = arrivals[index].time_s
            queue.put(arrivals[index].utterance)
            index += 1
            if stop_on_interrupt and queue.interrupt.is_set():
                return clock["now"]
        return None

    while index < len(arrivals) or queue.pending():
        if not queue.pending():
            arrive_until(arrivals[index].time_s, stop_on_interrupt=False)
            continue
        utterance = queue.get()
        if utterance is None:  # everything pending was stale
            continue
        taken = clock["now"]
        key = (utterance.text, utterance.urgent, utterance.yaw, utterance.earcon_played,
               tuple(c.text for c in utterance.carried))
        audio = cache.get(key) or cache.setdefault(key, render_alert(utterance, synth, config))
        ready = (audio.earcon_ms if audio.earcon_ms is not None else audio.render_ms) / 1000.0
        start = taken + ready + output_latency_s
        # Speech waits for synthesis when the earcon is shorter than synthesis took.
        extra = max(0.0, audio.render_ms / 1000.0 - ready - audio.speech_start_s)
        natural_end = start + extra + audio.end_s
        protect = start + extra + audio.heard_at_s.get(utterance.entity_id, 0.0)
        cut_at = None

        def sound_over(at: float) -> None:
            """An urgent arrival's earcon over the speech in progress, within one chunk."""
            urgent = queue.interrupting
            if urgent is not None and urgent.yaw is not None and config.earcons and not urgent.earcon_played:
                began = time.perf_counter()
                earcon_samples(urgent.yaw, synth.sample_rate, True, config)
                urgent.earcon_played = True
                overlay_at[id(urgent)] = at + CUT_GRANULARITY_S + time.perf_counter() - began + output_latency_s

        while (interrupted := arrive_until(natural_end, stop_on_interrupt=True)) is not None:
            sound_over(interrupted)
            if queue.cut_current:
                # The worker never cuts inside the direction phrase in progress (edge/speech.py),
                # unless that direction is a repeat the wearer has heard.
                cut_at = interrupted + CUT_GRANULARITY_S if queue.cut_at_once else max(
                    interrupted + CUT_GRANULARITY_S, protect)
                break
            queue.interrupt.clear()  # urgent over urgent: its earcon only, the speech goes on
        if cut_at is not None:
            # Alerts that arrive while the direction finishes are in the queue before the next pick.
            while (arrived := arrive_until(cut_at, stop_on_interrupt=True)) is not None:
                sound_over(arrived)
        played_s = (cut_at if cut_at is not None else natural_end) - start
        heard = {entity for entity, at in audio.heard_at_s.items() if at + extra <= played_s + 1e-9}
        queue.finished(utterance, heard)
        played.append(Played(
            text=utterance.text, entity_id=utterance.entity_id, urgent=utterance.urgent,
            decided_s=utterance.frame_read_at, taken_s=taken,
            earcon_s=overlay_at.get(id(utterance), None if audio.earcon_s is None else start),
            direction_onset_s=None if audio.direction_onset_s is None or audio.direction_onset_s + extra > played_s
            else start + extra + audio.direction_onset_s,
            heard_at_s={entity: start + extra + audio.heard_at_s[entity] for entity in heard},
            end_s=start + played_s, cut=cut_at is not None,
            words=len(utterance.text.split()) + sum(len(c.text.split()) for c in utterance.carried),
            audible_s=played_s,
        ))
        clock["now"] = max(clock["now"], start + played_s)
    return played, queue
