"""The on-device loop: frames -> flag -> track -> describe -> decide -> speak / record / emit.

One thread runs the hot path: read a frame, run the reflex tier, decide what to say, record
predictions, emit events. Speech synthesis and the optional model stages (SAM2, VLM) run in
worker threads behind bounded, latest-wins hand-offs, so an alert from the reflex tier never
waits for them; their results (refined masks, roles, captions) are folded in when they land.

This module only wires the parts together: entities (`entities`), when and what to alert
(`alert_policy`), model results (`fusion`), events and records (`outputs`), pictures
(`preview`) and the report (`run_summary`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from vigil360.config import Settings
from vigil360.edge.alert_policy import AlertPolicy, AlertRequest
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.entities import Entity, EntityRegistry
from vigil360.edge.events import AlertEvent, CaptionEvent, HealthEvent
from vigil360.edge.faults import Fault, FaultWatch, StageOutcome, collect_faults, stage_outcome
from vigil360.edge.fusion import CaptionLanded, ModelFusion
from vigil360.edge.model_stages import FINISH_GRACE_S, shut_down
from vigil360.edge.outputs import SideEvents, Sinks, record_reflex_masks
from vigil360.edge.preview import AnnotatedVideo, Outline, Preview
from vigil360.edge.profiling import RateMeter, Samples, StageTimer, rss_mb
from vigil360.edge.recorder import PredictionRecorder
from vigil360.edge.run_summary import LoopState, LoopStatus, RunSummary, summarise
from vigil360.edge.source import Frame, FrameSource
from vigil360.errors import UserError
from vigil360.records import describe_validation_error
from vigil360.schema import Alert

__all__ = ["RUNTIME_SETTINGS", "EdgeLoop", "LoopMode", "LoopStatus", "RunSummary"]

# "realtime": the wearer's loop - model stages in the background, alerts never wait for them, cooldowns
# on the wall clock. "offline" (bench runs): every frame waits for the model results it scheduled and
# every clock is the video's, so predictions do not depend on the machine's speed or load.
LoopMode = Literal["realtime", "offline"]

# Settings a running loop accepts from `update_settings`; everything else needs a restart.
RUNTIME_SETTINGS: dict[str, set[str]] = {
    "speech": {"enabled", "muted", "verbosity", "directions", "min_risk", "cooldown_s", "escalation",
               "urgent_risk", "stale_after_s", "spatial", "earcons", "ducking_db"},
    "loop": {"track_event_every", "stats_period_s", "preview_max_hz"},
}


class EdgeLoop:
    """The loop. `run()` on one thread; `status()`, `update_settings()`, `repeat_last()` and
    `latest_preview_jpeg()` may be called from others (the server)."""

    def __init__(self, source: FrameSource, settings: Settings | None = None, *, speaker=None,
                 recorder: PredictionRecorder | None = None, perception=None, mask_tracker=None,
                 grounder=None, captioner=None, annotated_video: str | Path | None = None,
                 max_frames: int | None = None, track_masks: bool = False, mode: LoopMode = "realtime",
                 finish_grace_s: float = FINISH_GRACE_S) -> None:
        if mode not in ("realtime", "offline"):
            raise UserError(f"loop mode {mode!r}: use 'realtime' or 'offline'")
        self.mode = mode
        self.finish_grace_s = finish_grace_s  # how long a model run in flight may land at the end
        self.source = source
        self.settings = settings or Settings()
        self.speaker = speaker
        self.recorder = recorder
        self.max_frames = max_frames
        self.timer = StageTimer()
        self.latency = Samples()  # frame read -> sentence ready, ms
        if perception is None:
            from vigil360.edge.reflex import ReflexPerception

            perception = ReflexPerception(source.width, source.height, settings=self.settings)
        self.perception = perception
        self.speech_queue: SpeechQueue = speaker.queue if speaker is not None else SpeechQueue(self.settings.speech)
        self.entities = EntityRegistry()
        self.policy = AlertPolicy(self.settings.speech, self.settings.reflex.personal_zone_m)
        self.fusion = ModelFusion(lambda: self.settings, self.timer, source.fps, self.entities, self.policy,
                                  mask_tracker=mask_tracker, grounder=grounder, captioner=captioner,
                                  synchronous=mode == "offline", now=self._now)
        self.sinks = Sinks()
        self.side_events = SideEvents(self.sinks, source.width, source.height, track_masks=track_masks)
        self.preview = Preview(self._label)
        self.annotated = None if annotated_video is None else AnnotatedVideo(annotated_video, source.fps, self._label)
        self.frames = 0
        self.error: str | None = None
        self.state: LoopState = "starting"
        self._fps = RateMeter(window_s=3.0)
        self._running = False
        self._fault_watch = FaultWatch()
        self._fault_signature: tuple = ()
        self._shutdown_problems: list[str] = []
        self._frame: Frame | None = None
        self.summary: RunSummary | None = None
        # Settings change from the server's threads: one read-modify-write at a time, or a second
        # change made meanwhile (a mute) would be lost.
        self._settings_lock = threading.Lock()

    # --- wiring for callers ---------------------------------------------------------------

    def add_sink(self, sink: Callable[[Any], None]) -> None:
        """`sink(event)` is called on the loop thread for every event; it must not block."""
        self.sinks.add(sink)

    def backends(self) -> dict[str, str]:
        speech = "off" if self.speaker is None else self.speaker.describe()
        return {
            "perception": type(self.perception).__name__,
            **self.fusion.backends(),
            "speech": speech,
            "recorder": str(self.recorder.path) if self.recorder else "off",
        }

    def status(self) -> LoopStatus:
        workers = self.fusion.workers()
        return LoopStatus(
            source=self.source.description, running=self._running, state=self.state, backends=self.backends(),
            fps=round(self._fps.rate(), 2), frames=self.frames, dropped_frames=self.source.dropped,
            alerts=self.policy.count, stages=self.timer.summary(),
            model_rates_hz={w.name: round(w.rate.rate(), 3) for w in workers},
            model_errors={w.name: list(w.errors)[-3:] for w in workers if w.errors},
            model_stages=self.stage_outcomes(), speech=self.speaker.health() if self.speaker is not None else None,
            faults=self.faults(), error=self.error,
        )

    def stage_outcomes(self) -> dict[str, StageOutcome]:
        return {w.name: stage_outcome(w) for w in self.fusion.workers()}

    def faults(self) -> list[Fault]:
        """Everything that failed so far (speech, recording, event clients, model stages, shutdown)."""
        return collect_faults(speech=self.speaker.health() if self.speaker is not None else None,
                              recorder=self.recorder, sink_errors=self.sinks.errors, stages=self.stage_outcomes(),
                              shutdown=self._shutdown_problems)

    def update_settings(self, patch: dict) -> Settings:
        """Validate `patch` (nested, like the settings file) and apply the runtime-changeable part."""
        for section, values in patch.items():
            if section not in Settings.model_fields:
                raise UserError(f"settings: unknown section {section!r}")
            allowed = RUNTIME_SETTINGS.get(section, set())
            keys = values.keys() if isinstance(values, dict) else [section]
            refused = sorted(k for k in keys if k not in allowed)
            if refused:
                names = ", ".join(f"{section}.{k}" if isinstance(values, dict) else k for k in refused)
                raise UserError(f"cannot change {names} while running (changeable: "
                                f"{', '.join(f'{s}.{k}' for s, ks in RUNTIME_SETTINGS.items() for k in sorted(ks))})")
        with self._settings_lock:
            merged = self.settings.model_dump()
            for section, values in patch.items():
                merged[section].update(values)
            try:
                updated = Settings.model_validate(merged)
            except ValidationError as error:
                raise UserError(describe_validation_error(error, "settings")) from None
            self.settings = updated
            self.policy.config = updated.speech
            self.speech_queue.config = updated.speech
            if self.speaker is not None:
                self.speaker.config = updated.speech
            return updated

    def repeat_last(self) -> AlertEvent | None:
        """Say the last alert again (speech permitting) and return it."""
        alert = self.policy.last
        if alert is not None and self._speaking():
            self.speech_queue.put(Utterance(alert.sentence, alert.entity_id, alert.risk, alert=alert, yaw=alert.yaw))
        return alert

    def latest_preview_jpeg(self, max_width: int = 960) -> bytes | None:
        """The last frame, downscaled, with entity outlines and ids; rendered at most preview_max_hz."""
        return self.preview.jpeg(max_width, self.settings.loop.preview_max_hz)

    def _speaking(self) -> bool:
        speech = self.settings.speech
        return self.speaker is not None and speech.enabled and not speech.muted

    def _now(self, frame: Frame) -> float:
        """The clock decisions are paced by (cooldowns, grounding period): see `LoopMode`."""
        return frame.time_s if self.mode == "offline" else frame.read_at

    def _label(self, entity_id: str) -> str:
        entity = self.entities.get(entity_id)
        return entity_id if entity is None or entity.caption is None else f"{entity_id} {entity.caption.text()}"

    # --- the loop --------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> RunSummary:
        """Process the source until it ends, `stop_event` is set or `max_frames` is reached.

        A damaged source ends the run with its error raised after everything read so far has
        been processed, recorded and flushed; `self.summary` holds the partial summary.
        """
        self._running, self.state = True, "running"
        if self.speaker is not None:
            self.speaker.start()
        rss_start = rss_mb()
        start = time.perf_counter()
        stopped = False
        frames = self.source.frames()
        failed = True
        try:
            while True:
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
                if self.max_frames is not None and self.frames >= self.max_frames:
                    break
                with self.timer.stage("read"):
                    frame = next(frames, None)
                if frame is None:
                    break
                self._step(frame)
            failed = False
        except UserError as error:
            self.error = str(error)
            raise
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            raise
        finally:
            # FPS counts the frames' own time, not the wait below for model stages to finish.
            wall = time.perf_counter() - start
            self._running = False
            frames.close()  # stops a source's reader thread before the source itself is closed
            self._finish()
            finish_s = time.perf_counter() - start - wall
            self.state = "failed" if failed else "stopped" if stopped else "ended"
            self.summary = summarise(self, wall, rss_start, stopped, finish_s)
            self._report_faults(self._frame)
            self._emit_health("loop", self.state, self.error or (
                "stopped on request" if stopped else f"the source ended after {self.frames} frames"))
        return self.summary

    def _step(self, frame: Frame) -> None:
        self._frame = frame
        if frame.decode_ms is not None:  # decoded ahead in the source's thread ("read" is then the wait)
            self.timer.add("decode", frame.decode_ms)
        self.fusion.remember(frame)
        with self.timer.stage("reflex"):
            tracks = self.perception.process(frame.image, frame.time_s)
        with self.timer.stage("decide"):
            live, retired = self.entities.update(tracks, frame.index, self.fusion.vlm_recent_frames())
            self.fusion.retire(retired)
            self.policy.retire(retired)
            self.policy.observe(tracks, self.entities)
            self.policy.forget(live, self._now(frame))
            self._collect_models(frame)
            for entity, request in self.policy.reflex_due(tracks, self.entities, self._now(frame)):
                self._alert(entity, frame, request)
        # Where a sentence would be ready on every frame (alerts are few; this has many samples).
        self.timer.add("to_decision", (time.perf_counter() - frame.read_at) * 1000.0)
        with self.timer.stage("record"):
            record_reflex_masks(self.recorder, tracks, frame, self.entities, self.settings.loop.mask_every,
                                self.source.width, self.source.height)
        with self.timer.stage("emit"):
            self.side_events.emit(tracks, frame, self.entities, self.settings.loop, fps=self._fps,
                                  frames=self.frames, dropped_frames=self.source.dropped, timer=self.timer)
            self.fusion.feed(tracks, frame)
            if self.mode == "offline":
                self._collect_models(frame)  # this frame's model results, computed just now
        outlines: list[Outline] = [(self.entities.id_for_track(t.track_id), t.box, t.flagged) for t in tracks]
        if self.annotated is not None:
            with self.timer.stage("annotate"):
                self.annotated.write(frame, tracks, outlines)
        self.preview.update(frame.image, outlines)
        self._report_faults(frame)
        self.frames += 1
        self._fps.tick()
        self.timer.add("frame", (time.perf_counter() - frame.read_at) * 1000.0)

    def _alert(self, entity: Entity, frame: Frame, request: AlertRequest) -> AlertEvent:
        """Make one alert and deliver it: record, events, speech, and a caption request."""
        alert, first, wording = self.policy.make(entity, frame, request)
        if request.tier == "reflex":
            self.latency.add((time.perf_counter() - frame.read_at) * 1000.0)
        if self.recorder is not None:
            self.recorder.entity(
                entity.entity_id, entity.role, label=entity.label, caption=entity.caption, sentence=alert.sentence,
                score=alert.risk, first_alert_frame=frame.index if first else None,
            )
            self.recorder.alert(Alert(
                entity_id=entity.entity_id, frame=frame.index, sentence=alert.sentence, urgent=alert.urgent,
                box=request.box, distance_m=alert.distance_m, risk=alert.risk, direction=wording.direction,
                time_to_contact_s=request.time_to_contact_s,
            ))
        self.sinks.emit(alert)
        if self._speaking():
            self.speech_queue.put(Utterance(
                alert.sentence, entity.entity_id, alert.risk, alert.urgent, frame.read_at, alert, yaw=alert.yaw,
                direction=wording.direction, where=wording.where, short=wording.short,
                full=wording.full,
                time_to_contact_s=request.time_to_contact_s,
            ))
        if first:
            self.fusion.caption_first_alert(entity, frame, alert, request.box, request.mask_history)
        return alert

    def _caption_landed(self, landed: CaptionLanded) -> None:
        entity, result, sentence = landed.entity, landed.result, landed.sentence
        self.policy.caption_landed(entity)
        if self.recorder is not None:
            self.recorder.entity(entity.entity_id, entity.role, caption=result.caption, sentence=sentence)
        if sentence is not None and self.settings.speech.verbosity == "verbose" and self._speaking():
            # Only verbose users hear the refinement; the others already heard the alert that mattered.
            self.speech_queue.put(Utterance(sentence, entity.entity_id, entity.risk, False, time.perf_counter(),
                                            yaw=entity.box.yaw if entity.box is not None else None))
        self.sinks.emit(CaptionEvent(frame_index=result.frame_index, frame_time_s=result.frame_time_s,
                                     entity_id=entity.entity_id, caption=result.caption, sentence=sentence))

    def _report_faults(self, frame: Frame | None) -> None:
        """Push a HealthEvent for each part whose state changed (cheap unless a counter moved)."""
        speaker, recorder = self.speaker, self.recorder
        signature = (speaker.failures if speaker is not None else 0,
                     speaker.consecutive_failures if speaker is not None else 0,
                     recorder.lines_lost if recorder is not None else 0, len(self.sinks.errors),
                     sum(len(w.errors) for w in self.fusion.workers()), len(self._shutdown_problems))
        if signature == self._fault_signature:
            return
        self._fault_signature = signature
        for fault in self._fault_watch.changed(self.faults()):
            self._emit_health(fault.component, fault.severity, fault.message, frame)

    def _emit_health(self, component: str, state: str, message: str, frame: Frame | None = None) -> None:
        frame = frame or self._frame
        index, time_s = (frame.index, frame.time_s) if frame is not None else (0, 0.0)
        self.sinks.emit(HealthEvent(frame_index=index, frame_time_s=time_s, component=component, state=state,
                                    message=message))

    def _collect_models(self, frame: Frame) -> None:
        self.fusion.collect(frame, recorder=self.recorder, alert=self._alert, caption_landed=self._caption_landed)

    # --- end of run ------------------------------------------------------------------------

    def _finish(self) -> None:
        # Every resource is released even if closing another fails: an ExitStack runs the
        # callbacks in reverse order of registration, so the recorder (predictions) closes last.
        with contextlib.ExitStack() as stack:
            if self.recorder is not None:
                stack.callback(self.recorder.close)
            if self.annotated is not None:
                stack.callback(self.annotated.release)
            if self.speaker is not None:
                stack.callback(self.speaker.close)
            stack.callback(self.source.close)
            # Model stages end within a few seconds whatever they are doing (`shut_down` states the
            # policy: waiting jobs dropped, a run in flight stopped after a short grace; counted).
            shut_down(self.fusion.workers(), grace_s=self.finish_grace_s)
            if self._frame is not None:
                self._collect_models(self._frame)
        self._shutdown_problems = self._still_running()

    def _still_running(self) -> list[str]:
        """Workers that did not stop when closed (each close waits a bounded time, then gives up)."""
        problems = [f"model stage {w.name} still running after close" for w in self.fusion.workers()
                    if w.alive()]
        if self.speaker is not None and _thread_alive(self.speaker):
            problems.append("speech worker still running after close (utterances may be cut)")
        problem = getattr(self.source, "close_problem", None)
        if problem:
            problems.append(problem)
        return problems


def _thread_alive(worker) -> bool:
    # A speaker without a thread of its own (a test double, a synchronous one) is never left running.
    alive = getattr(worker, "alive", None)
    return bool(alive()) if callable(alive) else False
