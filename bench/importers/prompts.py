"""VIEW360+ per-entity prompt files: the clicks and boxes an annotator gave the segmenter.

One CSV row per prompt:

    frame, entity_id, type, coords...

- `entity_id` is `actor0`..`actor9` (the perpetrator), `subject0`..`subject9` (whom or what
  the anomaly is done to) or `related0`..`related9` (other entities involved).
  Our reading of `subject`: the schema's `victim` by default (most VIEW360 subjects are the
  wearer's neighbours being robbed or teased); pass `subject_role="target"` for a set whose
  subjects are objects (a thrown-at car, a stolen bag).
- `type` is `point` (`x, y[, label]`, label 1 = foreground, 0 = background, default 1) or
  `box` (`x0, y0, x1, y1`). Coordinates are relative to the frame, in [0, 1].
- A row with frame -1 holds the entity's text: `-1, id, <text>` or `-1, id, <kind>, <text>`
  with kind `text`/`caption` (whole caption), `appearance` or `motion` (one half of the
  paper's split caption). Commas inside the text are kept (quote the field or not).

Where the real release differs, this module is where that is fixed.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from vigil360.records import RecordError
from vigil360.schema import Caption, Role

_ID = re.compile(r"^(actor|subject|related)([0-9])$")
_TEXT_KINDS = {"text", "caption", "appearance", "motion"}


@dataclass(frozen=True)
class PointPrompt:
    x: float
    y: float
    positive: bool = True


@dataclass
class EntityPrompts:
    """Prompts and text of one entity; coordinates stay relative (multiply by width/height)."""

    entity_id: str
    role: Role
    points: dict[int, list[PointPrompt]] = field(default_factory=dict)
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    appearance: list[str] = field(default_factory=list)
    motion: list[str] = field(default_factory=list)

    @property
    def frames(self) -> list[int]:
        return sorted(set(self.points) | set(self.boxes))

    def caption(self) -> Caption | None:
        if not self.appearance and not self.motion:
            return None
        return Caption(appearance=" ".join(self.appearance), motion=" ".join(self.motion))


def role_of(entity_id: str, subject_role: Role = "victim") -> Role:
    match = _ID.match(entity_id)
    if match is None:
        raise ValueError(f"entity id {entity_id!r} is not actor0-9, subject0-9 or related0-9")
    return {"actor": "perpetrator", "subject": subject_role, "related": "related"}[match.group(1)]


def _coords(values: list[str], count: int, where: str) -> list[float]:
    if len(values) != count:
        raise RecordError(f"{where}: expected {count} coordinates, got {len(values)}")
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise RecordError(f"{where}: coordinates must be numbers: {values}") from None
    outside = [n for n in numbers if not 0.0 <= n <= 1.0]
    if outside:
        raise RecordError(f"{where}: coordinates must be relative to the frame (0..1); got {outside}")
    return numbers


def _add_text(entity: EntityPrompts, fields: list[str], where: str) -> None:
    if fields and fields[0].lower() in _TEXT_KINDS:
        kind, text = fields[0].lower(), ",".join(fields[1:]).strip()
    else:
        kind, text = "text", ",".join(fields).strip()
    if not text:
        raise RecordError(f"{where}: text row for {entity.entity_id!r} has no text")
    # An unsplit caption goes into `appearance`; Caption.text() gives it back whole.
    (entity.motion if kind == "motion" else entity.appearance).append(text)


def read_prompt_file(path: str | Path, *, subject_role: Role = "victim") -> dict[str, EntityPrompts]:
    """Entities of one prompt file, keyed by entity id, in order of first appearance."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such prompt file")
    entities: dict[str, EntityPrompts] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, skipinitialspace=True), start=1):
            where = f"{path}:{number}"
            fields = [value.strip() for value in row]
            if not fields or not any(fields) or fields[0].startswith("#"):
                continue
            if len(fields) < 3:
                raise RecordError(f"{where}: expected 'frame, entity_id, type, coords...', got {len(fields)} field(s)")
            try:
                frame = int(fields[0])
            except ValueError:
                raise RecordError(f"{where}: frame {fields[0]!r} is not an integer") from None
            entity_id = fields[1]
            try:
                role = role_of(entity_id, subject_role)
            except ValueError as error:
                raise RecordError(f"{where}: {error}") from None
            entity = entities.setdefault(entity_id, EntityPrompts(entity_id=entity_id, role=role))
            if frame == -1:
                _add_text(entity, fields[2:], where)
                continue
            if frame < 0:
                raise RecordError(f"{where}: frame {frame} is negative (only -1 marks a text row)")
            kind, values = fields[2].lower(), fields[3:]
            if kind == "point":
                if len(values) == 3:
                    x, y = _coords(values[:2], 2, where)
                    if values[2] not in {"0", "1"}:
                        raise RecordError(f"{where}: point label must be 0 or 1, got {values[2]!r}")
                    positive = values[2] == "1"
                else:
                    x, y = _coords(values, 2, where)
                    positive = True
                entity.points.setdefault(frame, []).append(PointPrompt(x, y, positive))
            elif kind == "box":
                x0, y0, x1, y1 = _coords(values, 4, where)
                if x1 < x0 or y1 < y0:
                    raise RecordError(f"{where}: box corners out of order ({x0}, {y0}, {x1}, {y1})")
                if frame in entity.boxes:
                    raise RecordError(f"{where}: second box for {entity_id!r} on frame {frame}")
                entity.boxes[frame] = (x0, y0, x1, y1)
            else:
                raise RecordError(f"{where}: prompt type {fields[2]!r} is not point or box")
    return entities
