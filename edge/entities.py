"""The loop's entities: one id namespace ("e1", "e2", ...) across tiers.

A reflex track keeps its entity for life (across the seam too: the reflex tracker works in
angles); a VLM-grounded box matching a live track refines that entity instead of making a new
one. Entities that were announced are kept for the record after they are gone; the others are
forgotten, so memory stays bounded on long streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vigil360.schema import AngleBox, Caption, Role


@dataclass
class Entity:
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


def vlm_recent_frames(grounder_period_s: float, fps: float) -> int:
    """How long a VLM-only entity counts as present without being named again (frames): a few
    grounding periods, at least 5 s, of the source's clock."""
    return int(max(3 * grounder_period_s, 5.0) * fps) + 1


class EntityRegistry:
    def __init__(self) -> None:
        self._entities: dict[str, Entity] = {}
        self._by_track: dict[int, str] = {}
        self._retired: set[str] = set()  # announced entities no longer tracked (kept for the record)
        self._next_id = 1

    def new(self, **fields: Any) -> Entity:
        entity = Entity(entity_id=f"e{self._next_id}", **fields)
        self._next_id += 1
        self._entities[entity.entity_id] = entity
        return entity

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._entities

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._entities.values())

    def id_for_track(self, track_id: int) -> str:
        return self._by_track[track_id]

    def for_track(self, track_id: int) -> Entity:
        return self._entities[self._by_track[track_id]]

    def announced_ids(self) -> list[str]:
        return [e.entity_id for e in self._entities.values() if e.announced_frame is not None]

    def update(self, tracks: list, frame_index: int, vlm_stale_frames: int) -> tuple[set[str], list[str]]:
        """Fold this frame's reflex tracks in; return the live entity ids and the ids retired now
        (announced entities that are gone: their model state can be dropped)."""
        live: set[str] = set()
        for track in tracks:
            entity_id = self._by_track.get(track.track_id)
            if entity_id is None:
                entity = self.new(track_id=track.track_id)
                self._by_track[track.track_id] = entity.entity_id
            else:
                entity = self._entities[entity_id]
            entity.box, entity.risk, entity.last_seen_frame = track.box, track.risk, frame_index
            if not entity.grounded:  # the VLM's role and label outrank the reflex tier's guesses
                entity.label, entity.role, entity.whom = track.appearance.label_guess, track.role, track.whom
            live.add(entity.entity_id)
        gone = [eid for tid, eid in self._by_track.items() if eid not in live]
        self._by_track = {tid: eid for tid, eid in self._by_track.items() if eid in live}
        # VLM-only entities have no reflex track: they are gone once the VLM has not named them
        # again for a while (else each would keep a SAM2 view and memory bank forever).
        gone += [e.entity_id for e in self._entities.values() if e.track_id is None and
                 e.entity_id not in self._retired and frame_index - e.last_seen_frame > vlm_stale_frames]
        retired: list[str] = []
        for entity_id in gone:
            if self._entities[entity_id].announced_frame is None:
                del self._entities[entity_id]
            else:
                self._retired.add(entity_id)
                retired.append(entity_id)
        return live, retired

    def grounding_candidates(self, frame_index: int, vlm_recent: int) -> list[Entity]:
        """Entities a grounded box may refine: live reflex entities, and VLM-only entities
        grounded recently (they have no per-frame track)."""
        return [e for e in self._entities.values() if e.box is not None and
                (e.last_seen_frame == frame_index or (e.track_id is None and
                                                      frame_index - e.last_seen_frame <= vlm_recent))]
