"""Model fusion: feed the optional model stages (SAM2, VLM grounder, captioner) and fold what
they return into the loop's entities.

The stages run in worker threads (`model_stages`); results are collected without blocking on
the loop thread. SAM2 masks refine the record of announced entities; a grounded box refines the
live entity it overlaps (or makes a VLM-only entity for what motion could not see, announced
through the same gate); a caption replaces the reflex tier's words for its entity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vigil360.config import Settings
from vigil360.edge.alert_policy import VLM_MOTION, AlertPolicy, AlertRequest
from vigil360.edge.announce import compose_sentence
from vigil360.edge.entities import Entity, EntityRegistry, vlm_recent_frames
from vigil360.edge.events import AlertEvent
from vigil360.edge.geometry import anglebox_iou
from vigil360.edge.model_stages import (
    Captioned,
    CaptionerStage,
    GrounderStage,
    Grounding,
    MaskTrackerStage,
    TrackedMasks,
)
from vigil360.edge.profiling import StageTimer
from vigil360.edge.recorder import PredictionRecorder
from vigil360.edge.source import Frame
from vigil360.schema import AngleBox

# A grounded box matches a live entity above this angular IoU (boxes from different tiers differ).
MATCH_IOU = 0.1


@dataclass
class CaptionLanded:
    entity: Entity
    result: Captioned
    sentence: str | None  # the entity's sentence with the caption's words (None without a box)


class ModelFusion:
    def __init__(self, settings: Callable[[], Settings], timer: StageTimer, fps: float, registry: EntityRegistry,
                 policy: AlertPolicy, *, mask_tracker=None, grounder=None, captioner=None) -> None:
        self._settings = settings  # read at use: the server may change settings while running
        self._fps = fps
        self._registry = registry
        self._policy = policy
        current = settings()
        view_size = current.loop.view_size
        self.sam2 = None if mask_tracker is None else MaskTrackerStage(mask_tracker, timer)
        self.grounder = None if grounder is None else GrounderStage(grounder, timer, view_size)
        self.captioner = None if captioner is None else CaptionerStage(
            captioner, timer, view_size, current.vlm.clip_size, current.vlm.dim)
        # Recent frames for the captioner, with their times (the reflex mask history is keyed by time).
        self._clip: deque[tuple[float, np.ndarray]] = deque(maxlen=current.loop.caption_clip_frames)
        self._last_grounding = -1e9

    def workers(self) -> list:
        return [stage.worker for stage in (self.sam2, self.grounder, self.captioner) if stage is not None]

    def backends(self) -> dict[str, str]:
        return {
            "tracker": "sam2" if self.sam2 else "reflex",
            "grounder": type(self.grounder.grounder).__name__ if self.grounder else "off",
            "captioner": type(self.captioner.captioner).__name__ if self.captioner else "reflex appearance",
        }

    def vlm_recent_frames(self) -> int:
        return vlm_recent_frames(self._settings().loop.grounder_period_s, self._fps)

    def remember(self, frame: Frame) -> None:
        if self.captioner is not None:
            self._clip.append((frame.time_s, frame.image))

    def retire(self, entity_ids: list[str]) -> None:
        if self.sam2 is not None:
            for entity_id in entity_ids:
                self.sam2.retire(entity_id)

    # --- feeding -----------------------------------------------------------------------------

    def feed(self, tracks: list, frame: Frame) -> None:
        registry = self._registry
        if self.captioner is not None:
            self.captioner.pump()
        new_flags = [t for t in tracks if t.flagged and registry.for_track(t.track_id).announced_frame == frame.index]
        if self.sam2 is not None:
            seeds = [(registry.id_for_track(t.track_id), t.box) for t in new_flags]
            self.sam2.submit(frame.index, frame.image, seeds)
        if self.grounder is not None:
            periodic = frame.read_at - self._last_grounding >= self._settings().loop.grounder_period_s
            if new_flags or periodic:
                self._last_grounding = frame.read_at
                trigger = new_flags[0].box if new_flags else None
                context = ("a moving entity was flagged here: " + new_flags[0].reason) if new_flags else \
                    "a wearable 360-degree camera's surroundings"
                self.grounder.submit(frame.index, frame.time_s, frame.image, trigger, context)

    def caption_first_alert(self, entity: Entity, frame: Frame, alert: AlertEvent, box: AngleBox,
                            mask_history: dict | None) -> None:
        """Ask the captioner about a newly announced entity, over the recent clip."""
        if self.captioner is None or not self._clip:
            return
        context = f"{entity.label} {alert.motion}, {alert.clock_hour} o'clock"
        history = mask_history or {}
        clip = [(image, history.get(time_s)) for time_s, image in self._clip]
        self.captioner.submit(entity.entity_id, frame.index, frame.time_s, clip, box, context)

    # --- folding results in ------------------------------------------------------------------

    def collect(self, frame: Frame, *, recorder: PredictionRecorder | None,
                alert: Callable[[Entity, Frame, AlertRequest], AlertEvent],
                caption_landed: Callable[[CaptionLanded], None]) -> None:
        if self.sam2 is not None:
            for result in self.sam2.worker.drain():
                self._apply_masks(result, recorder)
        if self.grounder is not None:
            for result in self.grounder.worker.drain():
                self._apply_grounding(result, frame, alert)
        if self.captioner is not None:
            for result in self.captioner.worker.drain():
                landed = self._apply_caption(result)
                if landed is not None:
                    caption_landed(landed)

    def _apply_masks(self, result: TrackedMasks, recorder: PredictionRecorder | None) -> None:
        if recorder is None:
            return
        for entity_id, (rle, box) in result.masks.items():
            if box is None:
                continue  # SAM2 lost it on that frame: nothing to record
            entity = self._registry.get(entity_id)
            if entity is not None and entity.announced_frame is not None:
                recorder.mask(entity_id, result.frame_index, rle=rle, box=box)

    def _apply_grounding(self, grounding: Grounding, frame: Frame,
                         alert: Callable[[Entity, Frame, AlertRequest], AlertEvent]) -> None:
        candidates = self._registry.grounding_candidates(frame.index, self.vlm_recent_frames())
        for found in grounding.entities:
            best = max(candidates, key=lambda e: anglebox_iou(e.box, found.box), default=None)
            if best is not None and anglebox_iou(best.box, found.box) >= MATCH_IOU:
                entity = best
                entity.role, entity.label, entity.grounded = found.role, found.label or entity.label, True
                if entity.track_id is None:
                    entity.box, entity.last_seen_frame = found.box, grounding.frame_index
            elif found.role == "related":
                continue
            else:
                # Something motion could not see (a glance, a threat): a VLM-only entity.
                entity = self._registry.new(role=found.role, label=found.label or "person", box=found.box,
                                            risk=found.confidence or 0.5, last_seen_frame=grounding.frame_index,
                                            grounded=True)
                candidates.append(entity)
            # Named but not yet announced (the reflex tier saw no danger): announce through the same
            # gate, and seed SAM2 so the entity gets masks.
            risk = found.confidence if found.confidence is not None else 0.5
            if entity.announced_frame is not None or found.role == "related":
                continue
            if not self._policy.due(entity.entity_id, risk, frame.read_at):
                continue
            source_frame = Frame(grounding.frame_index, grounding.frame_time_s, frame.image, frame.read_at)
            alert(entity, source_frame, AlertRequest(
                who=entity.label, motion=VLM_MOTION[found.role], box=found.box, distance_m=None,
                distance_sigma_m=None, risk=risk, reason=f"named {found.role} by the VLM", tier="vlm"))
            if self.sam2 is not None:
                self.sam2.submit(frame.index, frame.image, [(entity.entity_id, found.box)])

    def _apply_caption(self, result: Captioned) -> CaptionLanded | None:
        entity = self._registry.get(result.entity_id)
        if entity is None or result.caption is None:
            return None
        entity.caption, entity.captioned_by_vlm = result.caption, True
        speech = self._settings().speech
        sentence = None
        if entity.box is not None:
            sentence = compose_sentence(who=result.caption.appearance or entity.label, label=entity.label,
                                        motion=result.caption.motion, yaw=entity.box.yaw, distance_m=None,
                                        verbosity=speech.verbosity, directions=speech.directions)
            entity.sentence = sentence
        return CaptionLanded(entity, result, sentence)
