"""Alert policy: which flagged entities are due an alert now, and what the alert says.

The gate (cooldown, escalation) decides *when*; this module turns a flagged reflex track or a
VLM-named entity into one `AlertEvent` with its wording (direction first: `announce.Wordsmith`),
marks the entity announced, and keeps the count and the last alert (for "repeat last").
Appearance is the entity's vote over its track (`appearance_vote`), the same in every alert
until the VLM's caption replaces it. Delivering the alert (speech, record, events) is the
loop's wiring.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from vigil360.config import SpeechConfig
from vigil360.edge.announce import AlertGate, Wording, Wordsmith, motion_phrase
from vigil360.edge.appearance_vote import AppearanceVotes
from vigil360.edge.entities import Entity, EntityRegistry
from vigil360.edge.events import AlertEvent
from vigil360.edge.geometry import clock_hour
from vigil360.edge.source import Frame
from vigil360.schema import AngleBox, Caption

# What is said about an entity the VLM named before any caption exists (the caption follows).
VLM_MOTION = {"perpetrator": "acting suspiciously", "victim": "possibly targeted", "target": "possibly targeted"}


@dataclass
class AlertRequest:
    """What one alert is about, before it is composed."""

    who: str
    motion: str
    box: AngleBox
    distance_m: float | None
    distance_sigma_m: float | None
    risk: float
    reason: str
    tier: str
    mask_history: dict | None = field(default=None)
    time_to_contact_s: float | None = None


def time_to_contact(distance_m: float | None, closing_mps: float | None, tau_s: float | None,
                    zone_m: float) -> float | None:
    """Seconds until the entity is within `zone_m`, from its range and closing speed, else from
    looming; None when it is not closing in."""
    if distance_m is not None and np.isfinite(distance_m) and closing_mps is not None and closing_mps > 0:
        return max(0.0, (distance_m - zone_m) / closing_mps)
    return tau_s


class AlertPolicy:
    def __init__(self, speech: SpeechConfig, personal_zone_m: float = 1.5) -> None:
        self.gate = AlertGate(speech)
        self.words = Wordsmith()
        self.appearance = AppearanceVotes()
        self.personal_zone_m = personal_zone_m
        self.count = 0
        self.last: AlertEvent | None = None

    @property
    def config(self) -> SpeechConfig:
        return self.gate.config

    @config.setter
    def config(self, speech: SpeechConfig) -> None:
        self.gate.config = speech

    def due(self, entity_id: str, risk: float, now: float) -> bool:
        return self.gate.due(entity_id, risk, now)

    def forget(self, live_ids: set[str], now: float) -> None:
        self.gate.forget(live_ids, now)
        self.appearance.keep(live_ids)  # a gone track's id is never reused

    def retire(self, entity_ids: list[str]) -> None:
        """Entities that are gone for good (their ids are never reused)."""
        self.words.forget(set(entity_ids))
        self.appearance.forget(set(entity_ids))

    def observe(self, tracks: list, registry: EntityRegistry) -> None:
        """Each frame's appearance of each track is one vote for its entity."""
        for track in tracks:
            look = track.appearance
            self.appearance.observe(registry.id_for_track(track.track_id), look.upper, look.lower, look.label_guess)

    def caption_landed(self, entity: Entity) -> None:
        if entity.caption is not None:
            self.appearance.caption(entity.entity_id, entity.caption.appearance)

    def reflex_due(self, tracks: list, registry: EntityRegistry, now: float) -> Iterator[tuple[Entity, AlertRequest]]:
        """Flagged tracks due an alert, riskiest first. A generator: each alert is made before the
        next track is gated."""
        for track in sorted(tracks, key=lambda t: -t.risk):
            if not track.flagged:
                continue
            entity = registry.for_track(track.track_id)
            if not self.gate.due(entity.entity_id, track.risk, now):
                continue
            verbose = self.config.verbosity == "verbose"
            appearance = self.appearance.speak(entity.entity_id, verbose)
            motion = motion_phrase(track.reason, entity.whom, verbose)
            if entity.captioned_by_vlm and entity.caption is not None:
                motion = entity.caption.motion or motion
            yield entity, AlertRequest(
                who=appearance, motion=motion, box=track.box, distance_m=track.distance.metres,
                distance_sigma_m=track.distance.sigma, risk=track.risk, reason=track.reason, tier="reflex",
                mask_history=dict(track.mask_history),
                time_to_contact_s=time_to_contact(track.distance.metres, track.closing_mps, track.tau_s,
                                                  self.personal_zone_m),
            )

    def make(self, entity: Entity, frame: Frame, request: AlertRequest) -> tuple[AlertEvent, bool, Wording]:
        """Compose the alert, count it and mark the entity announced; True when it is the first."""
        distance_m, sigma = request.distance_m, request.distance_sigma_m
        finite = distance_m is not None and np.isfinite(distance_m)
        urgent = self.gate.is_urgent(request.risk)
        wording = self.words.word(
            entity.entity_id, who=request.who, label=entity.label, motion=request.motion, yaw=request.box.yaw,
            distance_m=distance_m if finite else None, distance_sigma_m=sigma if finite else None, urgent=urgent,
            config=self.config,
        )
        sentence = wording.text
        box = request.box
        alert = AlertEvent(
            frame_index=frame.index, frame_time_s=frame.time_s, entity_id=entity.entity_id, role=entity.role,
            whom=entity.whom, sentence=sentence, appearance=request.who, motion=request.motion,
            clock_hour=int(clock_hour(box.yaw)), yaw=box.yaw, pitch=box.pitch,
            distance_m=distance_m if finite else None,
            distance_sigma_m=sigma if finite and np.isfinite(sigma or np.inf) else None,
            risk=float(np.clip(request.risk, 0, 1)), reason=request.reason, urgent=urgent, tier=request.tier,
        )
        self.count += 1
        first = entity.announced_frame is None
        entity.sentence = sentence
        if first:
            entity.announced_frame = frame.index
            if entity.caption is None:
                entity.caption = Caption(appearance=request.who, motion=request.motion)
        self.last = alert
        return alert, first, wording
