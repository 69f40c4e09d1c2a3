"""The on-device loop: frames -> flag -> track -> describe -> decide -> speak / record / emit.

One thread runs the hot path: read a frame, run the reflex tier, decide what to say, record
predictions, emit events. Speech synthesis and the optional model stages (SAM2, VLM) run in
worker threads behind bounded, latest-wins hand-offs, so an alert from the reflex tier never
waits for them; their results (refined masks, roles, captions) are folded in when they land.

Entity ids ("e1", "e2", ...) are the loop's, one namespace across tiers: a reflex track keeps
its id for life (across the seam too: the reflex tracker works in angles), and a VLM-grounded
box matching a live track refines that entity instead of making a new one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.config import Settings
from vigil360.edge.announce import AlertGate, SpeechQueue, Utterance, compose_sentence, motion_phrase
from vigil360.edge.events import AlertEvent, CaptionEvent, StageLatency, StatsEvent, TrackEvent
from vigil360.edge.geometry import anglebox_iou, anglebox_to_pixels, clock_hour
from vigil360.edge.model_stages import (
    Captioned,
    CaptionerStage,
    GrounderStage,
    Grounding,
    MaskTrackerStage,
    TrackedMasks,
)
from vigil360.edge.profiling import ProfileReport, RateMeter, Samples, StageTimer, peak_rss_mb, rss_mb
from vigil360.edge.recorder import PredictionRecorder, upsampled_rle
from vigil360.edge.source import Frame, FrameSource
from vigil360.errors import UserError
from vigil360.records import describe_validation_error
from vigil360.schema import AngleBox, Caption, Role

# Settings a running loop accepts from `update_settings`; everything else needs a restart.
RUNTIME_SETTINGS: dict[str, set[str]] = {
    "speech": {"enabled", "muted", "verbosity", "directions", "min_risk", "cooldown_s", "escalation",
               "urgent_risk", "stale_after_s"},
    "loop": {"track_event_every", "stats_period_s", "preview_max_hz"},
}
# A grounded box matches a live entity above this angular IoU (boxes from different tiers differ).
_MATCH_IOU = 0.1
# What is said about an entity the VLM named before any caption exists (the caption follows).
_VLM_MOTION = {"perpetrator": "acting suspiciously", "victim": "possibly targeted", "target": "possibly targeted"}


class LoopStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    running: bool
    backends: dict[str, str] = Field(description="stage -> what runs it (or 'off')")
    fps: float
    frames: int
    dropped_frames: int
    alerts: int
    stages: dict[str, StageLatency]
    model_rates_hz: dict[str, float] = Field(default_factory=dict)
    model_errors: dict[str, list[str]] = Field(default_factory=dict)
    error: str | None = None


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    frames: int
    dropped_frames: int
    alerts: int
    entities: list[str]
    spoken: int
    predictions: str | None
    profile: ProfileReport
    stopped: bool = Field(False, description="stopped on request before the source ended")
    error: str | None = None


@dataclass
class _EntityState:
    entity_id: str
    role: Role = "perpetrator"
    label: str = "moving object"
    track_id: int | None = None
    box: AngleBox | None = None
    risk: float = 0.0
    announced_frame: int | None = None
    caption: Caption | None = None
    sentence: str | None = None
    captioned_by_vlm: bool = False
    grounded: bool = False  # role and label come from the VLM grounder
    last_seen_frame: int = 0
    whom: str = "you"


@dataclass
class _Preview:
    image: np.ndarray | None = None
    outlines: list[tuple[str, AngleBox, bool]] = field(default_factory=list)
    rendered: bytes | None = None
    rendered_at: float = 0.0
    rendered_width: int = 0


class EdgeLoop:
    """The loop. `run()` on one thread; `status()`, `update_settings()`, `repeat_last()` and
    `latest_preview_jpeg()` may be called from others (the server)."""

    def __init__(self, source: FrameSource, settings: Settings | None = None, *, speaker=None,
                 recorder: PredictionRecorder | None = None, perception=None, mask_tracker=None,
                 grounder=None, captioner=None, annotated_video: str | Path | None = None,
                 max_frames: int | None = None, track_masks: bool = False) -> None:
        self.source = source
        self.settings = settings or Settings()
        self.speaker = speaker
        self.recorder = recorder
        self.max_frames = max_frames
        self.track_masks = track_masks  # TrackEvents carry masks only when a client asked
        self.timer = StageTimer()
        self.latency = Samples()  # frame read -> sentence ready, ms
        if perception is None:
            from vigil360.edge.reflex import ReflexPerception

            perception = ReflexPerception(source.width, source.height, settings=self.settings)
        self.perception = perception
        self.speech_queue: SpeechQueue = speaker.queue if speaker is not None else SpeechQueue(self.settings.speech)
        self.gate = AlertGate(self.settings.speech)
        self.sam2 = None if mask_tracker is None else MaskTrackerStage(mask_tracker, self.timer)
        view_size = self.settings.loop.view_size
        self.grounder = None if grounder is None else GrounderStage(grounder, self.timer, view_size)
        self.captioner = None if captioner is None else CaptionerStage(
            captioner, self.timer, view_size, self.settings.vlm.clip_size, self.settings.vlm.dim)
        self._annotated_path = None if annotated_video is None else Path(annotated_video)
        self._annotated: cv2.VideoWriter | None = None
        self._sinks: list[Callable[[Any], None]] = []
        self._sink_errors: list[str] = []
        self._entities: dict[str, _EntityState] = {}
        self._by_track: dict[int, str] = {}
        self._retired: set[str] = set()  # announced entities no longer tracked (kept for the record)
        self._next_id = 1
        self._alert_count = 0
        self._last_alert: AlertEvent | None = None
        # Recent frames for the captioner, with their times (the reflex mask history is keyed by time).
        self._clip: deque[tuple[float, np.ndarray]] = deque(maxlen=self.settings.loop.caption_clip_frames)
        self._preview = _Preview()
        self._preview_lock = threading.Lock()
        self._fps = RateMeter(window_s=3.0)
        self._frames = 0
        self._running = False
        self._error: str | None = None
        self._last_stats = 0.0
        self._last_grounding = -1e9
        self._frame: Frame | None = None
        self.summary: RunSummary | None = None

    # --- wiring for callers ---------------------------------------------------------------

    def add_sink(self, sink: Callable[[Any], None]) -> None:
        """`sink(event)` is called on the loop thread for every event; it must not block."""
        self._sinks.append(sink)

    def backends(self) -> dict[str, str]:
        speech = "off" if self.speaker is None else self.speaker.describe()
        return {
            "perception": type(self.perception).__name__,
            "tracker": "sam2" if self.sam2 else "reflex",
            "grounder": type(self.grounder.grounder).__name__ if self.grounder else "off",
            "captioner": type(self.captioner.captioner).__name__ if self.captioner else "reflex appearance",
            "speech": speech,
            "recorder": str(self.recorder.path) if self.recorder else "off",
        }

    def _workers(self):
        return [stage.worker for stage in (self.sam2, self.grounder, self.captioner) if stage is not None]

    def status(self) -> LoopStatus:
        return LoopStatus(
            source=self.source.description, running=self._running, backends=self.backends(),
            fps=round(self._fps.rate(), 2), frames=self._frames, dropped_frames=self.source.dropped,
            alerts=self._alert_count, stages=self.timer.summary(),
            model_rates_hz={w.name: round(w.rate.rate(), 3) for w in self._workers()},
            model_errors={w.name: list(w.errors)[-3:] for w in self._workers() if w.errors},
            error=self._error,
        )

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
        merged = self.settings.model_dump()
        for section, values in patch.items():
            merged[section].update(values)
        try:
            updated = Settings.model_validate(merged)
        except ValidationError as error:
            raise UserError(describe_validation_error(error, "settings")) from None
        self.settings = updated
        self.gate.config = updated.speech
        self.speech_queue.config = updated.speech
        if self.speaker is not None:
            self.speaker.config = updated.speech
        return updated

    def repeat_last(self) -> AlertEvent | None:
        """Say the last alert again (speech permitting) and return it."""
        alert = self._last_alert
        if alert is not None and self._speaking():
            self.speech_queue.put(Utterance(alert.sentence, alert.entity_id, alert.risk, alert=alert))
        return alert

    def _speaking(self) -> bool:
        speech = self.settings.speech
        return self.speaker is not None and speech.enabled and not speech.muted

    # --- the loop --------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None) -> RunSummary:
        """Process the source until it ends, `stop_event` is set or `max_frames` is reached.

        A damaged source ends the run with its error raised after everything read so far has
        been processed, recorded and flushed; `self.summary` holds the partial summary.
        """
        self._running = True
        if self.speaker is not None:
            self.speaker.start()
        rss_start = rss_mb()
        start = time.perf_counter()
        stopped = False
        frames = self.source.frames()
        try:
            while True:
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
                if self.max_frames is not None and self._frames >= self.max_frames:
                    break
                with self.timer.stage("read"):
                    frame = next(frames, None)
                if frame is None:
                    break
                self._step(frame)
        except UserError as error:
            self._error = str(error)
            raise
        finally:
            # FPS counts the frames' own time, not the wait below for model stages to finish.
            wall = time.perf_counter() - start
            self._running = False
            frames.close()  # stops a source's reader thread before the source itself is closed
            self._finish()
            self.summary = self._summarise(wall, rss_start, stopped)
        return self.summary

    def _step(self, frame: Frame) -> None:
        self._frame = frame
        if frame.decode_ms is not None:  # decoded ahead in the source's thread ("read" is then the wait)
            self.timer.add("decode", frame.decode_ms)
        if self.captioner is not None:
            self._clip.append((frame.time_s, frame.image))
        with self.timer.stage("reflex"):
            tracks = self.perception.process(frame.image, frame.time_s)
        with self.timer.stage("decide"):
            live = self._update_entities(tracks, frame)
            self._collect_models(frame)
            self._announce(tracks, frame)
        # Where a sentence would be ready on every frame (alerts are few; this has many samples).
        self.timer.add("to_decision", (time.perf_counter() - frame.read_at) * 1000.0)
        with self.timer.stage("record"):
            self._record(tracks, frame)
        with self.timer.stage("emit"):
            self._emit_side_events(tracks, frame)
            self._feed_models(tracks, frame, live)
        if self._annotated_path is not None:
            with self.timer.stage("annotate"):
                self._write_annotated(frame, tracks)
        with self._preview_lock:
            self._preview.image = frame.image
            self._preview.outlines = [(self._by_track[t.track_id], t.box, t.flagged) for t in tracks]
        self._frames += 1
        self._fps.tick()
        self.timer.add("frame", (time.perf_counter() - frame.read_at) * 1000.0)

    def _emit(self, event: Any) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception as error:  # noqa: BLE001 - a broken client must not stop the wearer's alerts
                if len(self._sink_errors) < 20:
                    self._sink_errors.append(f"{type(error).__name__}: {error}")

    def _new_entity(self, **fields: Any) -> _EntityState:
        entity = _EntityState(entity_id=f"e{self._next_id}", **fields)
        self._next_id += 1
        self._entities[entity.entity_id] = entity
        return entity

    def _update_entities(self, tracks: list, frame: Frame) -> set[str]:
        live: set[str] = set()
        for track in tracks:
            entity_id = self._by_track.get(track.track_id)
            if entity_id is None:
                entity = self._new_entity(track_id=track.track_id)
                self._by_track[track.track_id] = entity.entity_id
            else:
                entity = self._entities[entity_id]
            entity.box, entity.risk, entity.last_seen_frame = track.box, track.risk, frame.index
            if not entity.grounded:  # the VLM's role and label outrank the reflex tier's guesses
                entity.label, entity.role, entity.whom = track.appearance.label_guess, track.role, track.whom
            live.add(entity.entity_id)
        # Bounded memory on long streams: forget entities that are gone and were never announced
        # (announced ones stay: the recorder and captions refer to them).
        gone = [eid for tid, eid in self._by_track.items() if eid not in live]
        self._by_track = {tid: eid for tid, eid in self._by_track.items() if eid in live}
        # VLM-only entities have no reflex track: they are gone once the VLM has not named them
        # again for a while (else each would keep a SAM2 view and memory bank forever).
        stale = self._vlm_recent_frames()
        gone += [e.entity_id for e in self._entities.values() if e.track_id is None and
                 e.entity_id not in self._retired and frame.index - e.last_seen_frame > stale]
        for entity_id in gone:
            if self._entities[entity_id].announced_frame is None:
                del self._entities[entity_id]
            else:
                self._retired.add(entity_id)
                if self.sam2 is not None:
                    self.sam2.retire(entity_id)
        self.gate.forget(live, frame.read_at)
        return live

    def _announce(self, tracks: list, frame: Frame) -> None:
        for track in sorted(tracks, key=lambda t: -t.risk):
            if not track.flagged:
                continue
            entity = self._entities[self._by_track[track.track_id]]
            if not self.gate.due(entity.entity_id, track.risk, frame.read_at):
                continue
            appearance = track.appearance.phrase()
            motion = motion_phrase(track.reason, entity.whom)
            if entity.captioned_by_vlm and entity.caption is not None:
                appearance, motion = entity.caption.appearance or appearance, entity.caption.motion or motion
            self._alert(entity, frame, who=appearance, motion=motion, box=track.box,
                        distance_m=track.distance.metres, distance_sigma_m=track.distance.sigma, risk=track.risk,
                        reason=track.reason, tier="reflex", mask_history=dict(track.mask_history))

    def _alert(self, entity: _EntityState, frame: Frame, *, who: str, motion: str, box: AngleBox,
               distance_m: float | None, distance_sigma_m: float | None, risk: float, reason: str,
               tier: str, mask_history: dict | None = None) -> AlertEvent:
        speech = self.settings.speech
        finite = distance_m is not None and np.isfinite(distance_m)
        sentence = compose_sentence(
            who=who, label=entity.label, motion=motion, yaw=box.yaw, distance_m=distance_m if finite else None,
            distance_sigma_m=distance_sigma_m if finite else None, verbosity=speech.verbosity,
            directions=speech.directions,
        )
        urgent = self.gate.is_urgent(risk)
        alert = AlertEvent(
            frame_index=frame.index, frame_time_s=frame.time_s, entity_id=entity.entity_id, role=entity.role,
            whom=entity.whom, sentence=sentence, appearance=who, motion=motion, clock_hour=int(clock_hour(box.yaw)),
            yaw=box.yaw, pitch=box.pitch, distance_m=distance_m if finite else None,
            distance_sigma_m=distance_sigma_m if finite and np.isfinite(distance_sigma_m or np.inf) else None,
            risk=float(np.clip(risk, 0, 1)), reason=reason, urgent=urgent, tier=tier,
        )
        if tier == "reflex":
            self.latency.add((time.perf_counter() - frame.read_at) * 1000.0)
        self._alert_count += 1
        first = entity.announced_frame is None
        entity.sentence = sentence
        if first:
            entity.announced_frame = frame.index
            if entity.caption is None:
                entity.caption = Caption(appearance=who, motion=motion)
        if self.recorder is not None:
            self.recorder.entity(
                entity.entity_id, entity.role, label=entity.label, caption=entity.caption, sentence=sentence,
                score=alert.risk, first_alert_frame=frame.index if first else None,
            )
        self._last_alert = alert
        self._emit(alert)
        if self._speaking():
            self.speech_queue.put(Utterance(sentence, entity.entity_id, alert.risk, urgent, frame.read_at, alert))
        if first and self.captioner is not None and self._clip:
            context = f"{entity.label} {motion}, {alert.clock_hour} o'clock"
            history = mask_history or {}
            clip = [(image, history.get(time_s)) for time_s, image in self._clip]
            self.captioner.submit(entity.entity_id, frame.index, frame.time_s, clip, box, context)
        return alert

    def _record(self, tracks: list, frame: Frame) -> None:
        if self.recorder is None or frame.index % self.settings.loop.mask_every:
            return
        for track in tracks:
            entity = self._entities[self._by_track[track.track_id]]
            if entity.announced_frame is None or track.mask is None:
                continue
            # With SAM2 on, its masks (written when they land) refine these frames' reflex masks.
            rle = upsampled_rle(track.mask, self.source.width, self.source.height)
            self.recorder.mask(entity.entity_id, frame.index, rle=rle, box=track.box)

    def _emit_side_events(self, tracks: list, frame: Frame) -> None:
        loop = self.settings.loop
        if self._sinks and frame.index % loop.track_event_every == 0:
            for track in tracks:
                mask = None
                if self.track_masks and track.mask is not None:
                    mask = upsampled_rle(track.mask, self.source.width, self.source.height)
                self._emit(TrackEvent(
                    frame_index=frame.index, frame_time_s=frame.time_s, entity_id=self._by_track[track.track_id],
                    box=track.box, risk=float(np.clip(track.risk, 0, 1)), flagged=track.flagged, mask=mask,
                    distance_m=track.distance.metres if np.isfinite(track.distance.metres) else None,
                ))
        now = time.perf_counter()
        if now - self._last_stats >= loop.stats_period_s:
            self._last_stats = now
            self._emit(StatsEvent(frame_index=frame.index, frame_time_s=frame.time_s, fps=round(self._fps.rate(), 2),
                                  frames=self._frames, dropped_frames=self.source.dropped,
                                  stages=self.timer.summary()))

    # --- optional model stages ------------------------------------------------------------

    def _feed_models(self, tracks: list, frame: Frame, live: set[str]) -> None:
        if self.captioner is not None:
            self.captioner.pump()
        if self.sam2 is not None:
            seeds = [(self._by_track[t.track_id], t.box) for t in tracks
                     if t.flagged and self._entities[self._by_track[t.track_id]].announced_frame == frame.index]
            self.sam2.submit(frame.index, frame.image, seeds)
        if self.grounder is not None:
            new_flags = [t for t in tracks if t.flagged
                         and self._entities[self._by_track[t.track_id]].announced_frame == frame.index]
            periodic = frame.read_at - self._last_grounding >= self.settings.loop.grounder_period_s
            if new_flags or periodic:
                self._last_grounding = frame.read_at
                trigger = new_flags[0].box if new_flags else None
                context = ("a moving entity was flagged here: " + new_flags[0].reason) if new_flags else \
                    "a wearable 360-degree camera's surroundings"
                self.grounder.submit(frame.index, frame.time_s, frame.image, trigger, context)

    def _collect_models(self, frame: Frame) -> None:
        if self.sam2 is not None:
            for result in self.sam2.worker.drain():
                self._apply_masks(result)
        if self.grounder is not None:
            for result in self.grounder.worker.drain():
                self._apply_grounding(result, frame)
        if self.captioner is not None:
            for result in self.captioner.worker.drain():
                self._apply_caption(result)

    def _apply_masks(self, result: TrackedMasks) -> None:
        if self.recorder is None:
            return
        for entity_id, (rle, box) in result.masks.items():
            if box is None:
                continue  # SAM2 lost it on that frame: nothing to record
            if entity_id in self._entities and self._entities[entity_id].announced_frame is not None:
                self.recorder.mask(entity_id, result.frame_index, rle=rle, box=box)

    def _vlm_recent_frames(self) -> int:
        """How long a VLM-only entity counts as present without being named again (frames)."""
        return int(max(3 * self.settings.loop.grounder_period_s, 5.0) * self.source.fps) + 1

    def _apply_grounding(self, grounding: Grounding, frame: Frame) -> None:
        # Candidates: live reflex entities, and VLM-only entities grounded recently (they have no
        # per-frame track, so "recent" is a few grounding periods, at least 5 s, of the source's clock).
        recent = self._vlm_recent_frames()
        candidates = [e for e in self._entities.values() if e.box is not None and
                      (e.last_seen_frame == frame.index or (e.track_id is None and
                                                            frame.index - e.last_seen_frame <= recent))]
        for found in grounding.entities:
            best = max(candidates, key=lambda e: anglebox_iou(e.box, found.box), default=None)
            if best is not None and anglebox_iou(best.box, found.box) >= _MATCH_IOU:
                entity = best
                entity.role, entity.label, entity.grounded = found.role, found.label or entity.label, True
                if entity.track_id is None:
                    entity.box, entity.last_seen_frame = found.box, grounding.frame_index
            elif found.role == "related":
                continue
            else:
                # Something motion could not see (a glance, a threat): a VLM-only entity.
                entity = self._new_entity(role=found.role, label=found.label or "person", box=found.box,
                                          risk=found.confidence or 0.5, last_seen_frame=grounding.frame_index,
                                          grounded=True)
                candidates.append(entity)
            # Named but not yet announced (the reflex tier saw no danger): announce through the same
            # gate, and seed SAM2 so the entity gets masks.
            risk = found.confidence if found.confidence is not None else 0.5
            if entity.announced_frame is not None or found.role == "related":
                continue
            if not self.gate.due(entity.entity_id, risk, frame.read_at):
                continue
            source_frame = Frame(grounding.frame_index, grounding.frame_time_s, frame.image, frame.read_at)
            self._alert(entity, source_frame, who=entity.label, motion=_VLM_MOTION[found.role], box=found.box,
                        distance_m=None, distance_sigma_m=None, risk=risk, reason=f"named {found.role} by the VLM",
                        tier="vlm")
            if self.sam2 is not None:
                self.sam2.submit(frame.index, frame.image, [(entity.entity_id, found.box)])

    def _apply_caption(self, result: Captioned) -> None:
        entity = self._entities.get(result.entity_id)
        if entity is None or result.caption is None:
            return
        entity.caption, entity.captioned_by_vlm = result.caption, True
        speech = self.settings.speech
        sentence = None
        if entity.box is not None:
            sentence = compose_sentence(who=result.caption.appearance or entity.label, label=entity.label,
                                        motion=result.caption.motion, yaw=entity.box.yaw, distance_m=None,
                                        verbosity=speech.verbosity, directions=speech.directions)
            entity.sentence = sentence
        if self.recorder is not None:
            self.recorder.entity(entity.entity_id, entity.role, caption=result.caption, sentence=sentence)
        if sentence is not None and speech.verbosity == "verbose" and self._speaking():
            # Only verbose users hear the refinement; the others already heard the alert that mattered.
            self.speech_queue.put(Utterance(sentence, entity.entity_id, entity.risk, False, time.perf_counter()))
        self._emit(CaptionEvent(frame_index=result.frame_index, frame_time_s=result.frame_time_s,
                                entity_id=entity.entity_id, caption=result.caption, sentence=sentence))

    # --- reviewers' outputs --------------------------------------------------------------------

    def _draw(self, image: np.ndarray, outlines: list[tuple[str, AngleBox, bool]]) -> np.ndarray:
        height, width = image.shape[:2]
        for entity_id, box, flagged in outlines:
            x0, y0, x1, y1 = anglebox_to_pixels(box, width, height)
            colour = (0, 0, 255) if flagged else (0, 200, 255)
            # A box over the seam is drawn twice, once on each side of the image.
            for shift in (0, -width) if x1 > width else (0, width) if x0 < 0 else (0,):
                cv2.rectangle(image, (int(x0 + shift), int(y0)), (int(x1 + shift), int(y1)), colour, 2)
            entity = self._entities.get(entity_id)
            label = entity_id if entity is None or entity.caption is None else f"{entity_id} {entity.caption.text()}"
            cv2.putText(image, label[:60], (int(x0) % width, max(12, int(y0) - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, colour, 1, cv2.LINE_AA)
        return image

    def latest_preview_jpeg(self, max_width: int = 960) -> bytes | None:
        """The last frame, downscaled, with entity outlines and ids; rendered at most preview_max_hz."""
        with self._preview_lock:
            preview = self._preview
            if preview.image is None:
                return None
            now = time.perf_counter()
            fresh = now - preview.rendered_at < 1.0 / self.settings.loop.preview_max_hz
            if preview.rendered is not None and fresh and preview.rendered_width == max_width:
                return preview.rendered
            image, outlines = preview.image, list(preview.outlines)
        height, width = image.shape[:2]
        scale = min(1.0, max_width / width)
        small = cv2.resize(image, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1.0 else image.copy()
        ok, encoded = cv2.imencode(".jpg", self._draw(small, outlines), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return None
        with self._preview_lock:
            preview.rendered, preview.rendered_at, preview.rendered_width = encoded.tobytes(), now, max_width
        return preview.rendered

    def _write_annotated(self, frame: Frame, tracks: list) -> None:
        height, width = frame.image.shape[:2]
        if self._annotated is None:
            self._annotated_path.parent.mkdir(parents=True, exist_ok=True)
            self._annotated = cv2.VideoWriter(str(self._annotated_path), cv2.VideoWriter_fourcc(*"mp4v"),
                                              self.source.fps, (width, height))
            if not self._annotated.isOpened():
                raise UserError(f"{self._annotated_path}: cannot write the annotated video")
        image = frame.image.copy()
        for track in tracks:
            if track.mask is not None and track.flagged:
                full = cv2.resize(track.mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                image[full > 0] = (0.5 * image[full > 0] + (0, 0, 127)).astype(np.uint8)
        outlines = [(self._by_track[t.track_id], t.box, t.flagged) for t in tracks]
        self._annotated.write(self._draw(image, outlines))

    # --- end of run ------------------------------------------------------------------------

    def _finish(self) -> None:
        # Every resource is released even if closing another fails: an ExitStack runs the
        # callbacks in reverse order of registration, so the recorder (predictions) closes last.
        with contextlib.ExitStack() as stack:
            if self.recorder is not None:
                stack.callback(self.recorder.close)
            if self._annotated is not None:
                stack.callback(self._annotated.release)
            if self.speaker is not None:
                stack.callback(self.speaker.close)
            stack.callback(self.source.close)
            for worker in self._workers():
                stack.callback(worker.close)
            # Let model stages land what they are working on (bounded) before they are stopped.
            for worker in self._workers():
                worker.wait_idle(timeout=10.0)
            if self._frame is not None:
                self._collect_models(self._frame)

    def _summarise(self, wall: float, rss_start: float, stopped: bool) -> RunSummary:
        spoken = self.speaker.spoken_count if self.speaker is not None else 0
        speech_latency = self.speaker.latency if self.speaker is not None else Samples()
        queue = self.speech_queue
        profile = ProfileReport(
            source=self.source.description, frames=self._frames, dropped_frames=self.source.dropped,
            wall_s=round(wall, 3), fps=round(self._frames / wall, 2) if wall > 0 else 0.0,
            stages=self.timer.summary(), frame_to_sentence_ms=self.latency.summary(),
            frame_to_speech_ms=speech_latency.summary(),
            model_rates_hz={w.name: round(w.rate.total / wall, 3) if wall > 0 else 0.0 for w in self._workers()},
            alerts=self._alert_count, spoken=spoken, dropped_alerts=queue.dropped_stale + queue.dropped_full,
            rss_start_mb=round(rss_start, 1), rss_end_mb=round(rss_mb(), 1), peak_rss_mb=round(peak_rss_mb(), 1),
        )
        announced = [e.entity_id for e in self._entities.values() if e.announced_frame is not None]
        return RunSummary(
            source=self.source.description, frames=self._frames, dropped_frames=self.source.dropped,
            alerts=self._alert_count, entities=announced, spoken=spoken,
            predictions=str(self.recorder.path) if self.recorder else None, profile=profile, stopped=stopped,
            error=self._error,
        )
