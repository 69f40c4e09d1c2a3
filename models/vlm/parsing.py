"""Strict, robust reading of VLM output: recover what is there, reject with a reason, never invent.

Recoverable (each repair is recorded): a code fence or prose around the JSON; trailing commas;
Python-style literals (single quotes, True/None); output cut off by the token budget (complete
entities before the cut are kept); boxes outside 0..scale (clipped); swapped corners (reordered);
confidence given in percent; `{"entities": [...]}` or a single object instead of a list.

An empty list is a valid answer (the model saw nothing unusual): no entities, nothing rejected.

Rejected (with a reason, per entity where possible): no JSON at all; a missing or unknown role
(a role is never guessed - 'related' would be an invented claim); a missing label; a box that is
not four numbers or is empty after clipping; a view number outside the views given.

Captions must describe clothing, carried objects and actions, never identity, age, race or looks:
clauses that do are removed (and recorded) even if the prompt asked the model not to write them.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from vigil360.models.vlm.interfaces import CaptionResult, GroundedEntity, GroundingResult
from vigil360.schema import ROLES, Caption

_ROLE_SYNONYMS = {
    "perpetrator": "perpetrator", "actor": "perpetrator", "aggressor": "perpetrator", "attacker": "perpetrator",
    "offender": "perpetrator", "thief": "perpetrator", "culprit": "perpetrator",
    "victim": "victim", "target": "target", "related": "related", "other": "related", "bystander": "related",
}
_BOX_KEYS = ("box", "bbox", "box_2d", "bbox_2d")
_FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)(?:```|$)", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


class ParseError(ValueError):
    """The output holds nothing that can be read as the requested structure."""


def _json_span(text: str) -> str:
    """The outermost JSON-looking span, from the first bracket to its match (or to the end)."""
    fenced = _FENCE.search(text)
    if fenced and fenced.group(1).strip():
        text = fenced.group(1)
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        raise ParseError("no JSON object or list in the output")
    start = min(starts)
    for index, depth in _depths(text, start):
        if depth == 0:
            return text[start:index + 1]
    return text[start:]


def _depths(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """(index, depth after it) at every bracket outside strings, from `start`."""
    depth, quote, escaped = 0, "", False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            yield index, depth
        elif char in "]}":
            depth -= 1
            yield index, depth


def _close_truncated(span: str) -> str | None:
    """Cut a truncated list after its last complete element and close it; None if nothing complete."""
    if not span.startswith("["):
        return None
    last_complete = None
    for index, depth in _depths(span):
        if depth == 1 and span[index] in "]}":
            last_complete = index
    if last_complete is None:
        return None
    return span[:last_complete + 1] + "]"


def load_lenient_json(text: str, repairs: list[str]) -> Any:
    """Parse the JSON in `text`, appending a note to `repairs` for every fix applied."""
    span = _json_span(text)
    if span.strip() != text.strip():
        repairs.append("extracted JSON from surrounding text")
    candidates = [(span, None)]
    cleaned = _TRAILING_COMMA.sub(r"\1", span)
    if cleaned != span:
        candidates.append((cleaned, "removed trailing commas"))
    for candidate, note in list(candidates):
        closed = _close_truncated(candidate)
        if closed is not None and closed != candidate:
            candidates.append((closed, "output was cut off; kept the complete entries")
                              if note is None else (closed, f"{note}; output was cut off"))
    # Strict JSON first (with the textual repairs), Python literals only when JSON cannot read it.
    for candidate, note in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if note:
            repairs.append(note)
        return value
    for candidate, note in candidates:
        try:
            value = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        repairs.append("read Python-style literals (single quotes / True / None)" + (f"; {note}" if note else ""))
        return value
    raise ParseError(f"malformed JSON that could not be repaired: {span[:80]!r}")


def _number(value: Any) -> float | None:
    """A finite number, or None: 'nan' and 'inf' from a model are not coordinates."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _entity(item: Any, index: int, view_sizes: list[tuple[int, int]], frames: list[tuple[float, float]],
            repairs: list[str]) -> GroundedEntity | str:
    """One entity, or the reason it is rejected."""
    where = f"entity {index}"
    if not isinstance(item, dict):
        return f"{where}: not an object ({type(item).__name__})"
    role_text = item.get("role")
    if not isinstance(role_text, str) or not role_text.strip():
        return f"{where}: no role (roles are never guessed)"
    role = _ROLE_SYNONYMS.get(role_text.strip().lower())
    if role is None:
        return f"{where}: unknown role {role_text!r} (expected one of {', '.join(ROLES)})"
    label = item.get("label", item.get("name"))
    if not isinstance(label, str) or not label.strip():
        return f"{where}: no label"
    box = next((item[key] for key in _BOX_KEYS if key in item), None)
    if not isinstance(box, list | tuple) or len(box) != 4:
        return f"{where}: box is not four numbers: {box!r}"
    numbers = [_number(v) for v in box]
    if any(n is None for n in numbers):
        return f"{where}: box has a non-number: {box!r}"
    view = item.get("view", item.get("image"))
    if view is None:
        if len(view_sizes) != 1:
            return f"{where}: no view number with {len(view_sizes)} views"
        view_index = 0
    else:
        view_number = _number(view)
        if view_number is None or view_number != int(view_number) or not 1 <= view_number <= len(view_sizes):
            return f"{where}: view {view!r} is not one of 1..{len(view_sizes)}"
        view_index = int(view_number) - 1
    x1, y1, x2, y2 = numbers
    frame_width, frame_height = frames[view_index]
    if x1 > x2 or y1 > y2:
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        repairs.append(f"{where}: reordered swapped box corners")
    clipped = [min(max(v, 0.0), limit) for v, limit in zip((x1, y1, x2, y2), (frame_width, frame_height) * 2,
                                                           strict=True)]
    if clipped != [x1, y1, x2, y2]:
        repairs.append(f"{where}: clipped box to 0..{frame_width:g} x 0..{frame_height:g}")
    x1, y1, x2, y2 = clipped
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return f"{where}: empty box after clipping: {box!r}"
    confidence = item.get("confidence", item.get("score"))
    if confidence is not None:
        value = _number(confidence)
        if value is None:
            return f"{where}: confidence is not a number: {confidence!r}"
        if 1.0 < value <= 100.0:
            value /= 100.0
            repairs.append(f"{where}: confidence read as a percentage")
        if not 0.0 <= value <= 1.0:
            return f"{where}: confidence {confidence!r} outside 0..1"
        confidence = value
    width, height = view_sizes[view_index]
    pixels = (x1 / frame_width * width, y1 / frame_height * height, x2 / frame_width * width,
              y2 / frame_height * height)
    return GroundedEntity(view_index=view_index, box_xyxy=pixels, role=role,  # type: ignore[arg-type]
                          label=label.strip(), confidence=confidence)


def parse_grounding(text: str, view_sizes: list[tuple[int, int]], scale: float = 1000.0,
                    box_frames: list[tuple[float, float]] | None = None) -> GroundingResult:
    """Read entities from model output; boxes come back in pixels of each view (width, height).

    Boxes are read in each view's coordinate frame, `box_frames[i]` = (width, height): 0..`scale`
    on both axes by default (the generic prompt, and Qwen3-VL's 0..1000); a model that answers in
    pixels of the image it was fed (Qwen2.5-VL) passes that resized image's size.
    """
    if box_frames is None:
        box_frames = [(scale, scale)] * len(view_sizes)
    if len(box_frames) != len(view_sizes):
        raise ValueError(f"{len(box_frames)} box frames for {len(view_sizes)} views")
    result = GroundingResult(raw_text=text)
    try:
        value = load_lenient_json(text, result.repairs)
    except ParseError as error:
        result.rejected.append(str(error))
        return result
    if isinstance(value, dict):
        if isinstance(value.get("entities"), list):
            value = value["entities"]
            result.repairs.append("unwrapped {'entities': [...]}")
        else:
            value = [value]
            result.repairs.append("read a single object as a one-entity list")
    if not isinstance(value, list):
        result.rejected.append(f"expected a list of entities, got {type(value).__name__}")
        return result
    for index, item in enumerate(value):
        entity = _entity(item, index, view_sizes, box_frames, result.repairs)
        if isinstance(entity, str):
            result.rejected.append(entity)
        else:
            result.entities.append(entity)
    return result


# Words that describe who someone is or how they look rather than what they wear, carry or do.
_SENSITIVE = re.compile(
    r"\b(young|younger|old|older|elderly|aged|middle-aged|teen\w*|\d+\s*(?:years?|yrs?)[- ]old|in (?:his|her|their) "
    r"\d0s|asian|african|caucasian|hispanic|latin[oax]|arab|ethnic\w*|race|racial|(?:black|white|brown)[- ]"
    r"(?:man|men|woman|women|person|people|guy|girl|boy|skinned)|skin (?:tone|colou?r)|beautiful|pretty|handsome|"
    r"ugly|attractive|unattractive|cute|fat|obese|overweight|skinny|chubby|bald|wrinkled|named|called)\b",
    re.I,
)
_CLAUSE = re.compile(r"[^,.;]+[,.;]?")


def screen_sensitive(text: str) -> tuple[str, list[str]]:
    """Drop clauses about identity, age, race or looks; returns the clean text and what was removed."""
    kept, removed = [], []
    for clause in _CLAUSE.findall(text):
        (removed if _SENSITIVE.search(clause) else kept).append(clause)
    clean = "".join(kept).strip(" ,;")
    return clean, [c.strip(" ,.;") for c in removed]


_LABELLED = re.compile(r"(appearance|motion)\s*[:=-]\s*(.+?)(?=(?:\b(?:appearance|motion)\s*[:=-])|$)", re.I | re.S)


def parse_caption(text: str) -> CaptionResult:
    """{appearance, motion} from model output (JSON, or 'Appearance: ... Motion: ...' lines)."""
    repairs: list[str] = []
    fields: dict[str, str] = {}
    try:
        value = load_lenient_json(text, repairs)
    except ParseError as error:
        found = {m.group(1).lower(): m.group(2).strip().strip('"') for m in _LABELLED.finditer(text)}
        if not found:
            return CaptionResult(Caption(), text, ok=False, reason=str(error))
        repairs.append("read 'Appearance: / Motion:' labelled text")
        fields = found
    else:
        if not isinstance(value, dict):
            return CaptionResult(Caption(), text, ok=False, reason=f"expected an object, got {type(value).__name__}")
        for key in ("appearance", "motion"):
            if key in value and not isinstance(value[key], str):
                return CaptionResult(Caption(), text, ok=False, reason=f"{key} is not text: {value[key]!r}")
            fields[key] = str(value.get(key, "")).strip()
    for key in ("appearance", "motion"):
        clean, removed = screen_sensitive(fields.get(key, ""))
        if removed:
            repairs.append(f"{key}: removed identity/age/race/looks remarks: {removed}")
        fields[key] = clean
    caption = Caption(appearance=fields.get("appearance", ""), motion=fields.get("motion", ""))
    missing = [key for key in ("appearance", "motion") if not getattr(caption, key)]
    if missing:
        return CaptionResult(caption, text, ok=False, reason=f"no {' and no '.join(missing)} in the output",
                             repairs=repairs)
    return CaptionResult(caption, text, ok=True, repairs=repairs)
