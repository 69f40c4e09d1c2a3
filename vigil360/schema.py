"""One schema for ground truth and predictions (documented in docs/schema.md).

Everything that crosses a boundary between edge, models and bench is one of these models.
Storage is JSON Lines: each line is a `VideoLine`, `EntityLine`, `MaskLine` or (1.1) `AlertLine`, so a running
loop can append and flush as it goes and a crash loses nothing already written. A reader
folds the lines of one video into a `VideoRecord`. A single `VideoRecord` may also be
stored as one `.json` file (written atomically).

Masks are COCO RLE in equirectangular pixels of the video (`size` = [height, width]).
Frames are 0-based indices into the video.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1.1"
# Versions this code reads: 1.1 added `alert` lines (and `VideoRecord.alerts`); nothing was removed.
READABLE_VERSIONS: tuple[str, ...] = ("1.0", "1.1")

Role = Literal["perpetrator", "victim", "target", "related"]
ROLES: tuple[Role, ...] = ("perpetrator", "victim", "target", "related")

# VIEW360's coarse direction labels ('l', 'c', 'r' in the authors' temporal files).
Sector = Literal["left_back", "center", "right_back"]

# VIEW360 (Glance, Stealing, Teasing) + VIEW360+ (Collide, Threaten, Throw, Traffic).
ANOMALY_CLASSES: tuple[str, ...] = (
    "Glance",
    "Stealing",
    "Teasing",
    "Collide",
    "Threaten",
    "Throw",
    "Traffic",
)
_CLASS_ALIASES = {"glancing": "Glance", "steal": "Stealing", "tease": "Teasing", "collision": "Collide"}

RecordKind = Literal["ground_truth", "prediction"]


def normalise_class(name: str) -> str:
    """Map a class name as found in the wild (case, old names) to its canonical spelling."""
    key = name.strip().lower()
    if key in _CLASS_ALIASES:
        return _CLASS_ALIASES[key]
    for canonical in ANOMALY_CLASSES:
        if canonical.lower() == key:
            return canonical
    raise ValueError(f"unknown anomaly class {name!r}; known: {', '.join(ANOMALY_CLASSES)}")


class _Strict(BaseModel):
    # A typo in a file must be an error that names the key, not a silently ignored field; NaN and
    # infinities are never a score, a rate or an angle.
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


def rle_counts(counts: str) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (pycocotools' `rleFrString`, vectorised).

    Raises ValueError for a string pycocotools would decode into garbage: a character outside
    its alphabet, a truncated last run, or a negative run.
    """
    codes = np.frombuffer(counts.encode("ascii", errors="replace"), np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, np.int64)
    if codes.min() < 0 or codes.max() > 63:
        raise ValueError("counts: not a compressed COCO RLE string (characters outside '0'..'o')")
    ends = (codes & 0x20) == 0  # a character without the continuation bit ends a run
    if not ends[-1]:
        raise ValueError("counts: truncated (the last run is incomplete)")
    index = np.arange(codes.size)
    is_start = np.concatenate([[True], ends[:-1]])
    starts = index[is_start]
    digit = index - np.maximum.accumulate(np.where(is_start, index, 0))
    if digit.max() > 6:  # 7 five-bit digits hold any 32-bit run
        raise ValueError("counts: a run longer than any frame")
    values = np.add.reduceat((codes & 0x1F) << (5 * digit), starts)
    negative = (codes[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * (digit[ends] + 1)))
    runs = values.copy()
    # From the fourth run on, each value is a difference to the run two before (same colour).
    for parity in (1, 2):
        if runs.size > parity + 2:
            runs[parity::2] = np.cumsum(values[parity::2])
    if runs.size and runs.min() < 0:
        raise ValueError("counts: a negative run length")
    return runs


class RLE(_Strict):
    """COCO run-length encoding (column-major), as produced by pycocotools."""

    size: tuple[int, int] = Field(description="[height, width] of the full equirectangular frame")
    counts: str = Field(description="compressed COCO RLE string")

    @model_validator(mode="after")
    def _runs_cover_the_frame(self) -> RLE:
        total = int(rle_counts(self.counts).sum())
        if total != self.size[0] * self.size[1]:
            raise ValueError(f"counts: the runs cover {total} pixels, not the frame's "
                             f"{self.size[0]} x {self.size[1]} = {self.size[0] * self.size[1]}")
        return self


class AngleBox(_Strict):
    """A box on the sphere, in degrees. `yaw` is the centre, wrapped to [-180, 180)."""

    yaw: float = Field(ge=-180.0, lt=180.0, description="centre yaw; 0 ahead, positive to the right")
    pitch: float = Field(ge=-90.0, le=90.0, description="centre pitch; positive up")
    width: float = Field(ge=0.0, le=360.0, description="angular width (yaw extent)")
    height: float = Field(ge=0.0, le=180.0, description="angular height (pitch extent)")


class Caption(_Strict):
    """The paper's split caption: what the entity looks like, and what it does."""

    appearance: str = ""
    motion: str = ""

    def text(self) -> str:
        return " ".join(part for part in (self.appearance.strip(), self.motion.strip()) if part)


class AnomalyInterval(_Strict):
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0, description="inclusive")
    anomaly_class: str
    direction: Sector | None = None

    @field_validator("anomaly_class")
    @classmethod
    def _canonical_class(cls, value: str) -> str:
        return normalise_class(value)

    @model_validator(mode="after")
    def _ordered(self) -> AnomalyInterval:
        if self.end_frame < self.start_frame:
            raise ValueError(f"end_frame {self.end_frame} is before start_frame {self.start_frame}")
        return self


class Video(_Strict):
    video_id: str = Field(min_length=1)
    fps: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    num_frames: int | None = Field(default=None, ge=0)
    intervals: list[AnomalyInterval] = Field(default_factory=list)
    location: str | None = None
    split: str | None = None
    dataset: str | None = Field(default=None, description="e.g. VIEW360, VIEW360+, synthetic")
    caption: str | None = Field(default=None, description="video-level caption (stage 1 of the paper)")
    annotated_frames: list[int] | None = Field(
        default=None, description="ground truth annotated on a subset of frames (e.g. sampled at 1 fps): those "
                                  "frames; IoU is then taken over them only. None: every frame is annotated")

    @property
    def anomaly_class(self) -> str | None:
        return self.intervals[0].anomaly_class if self.intervals else None


class EntityInfo(_Strict):
    """Everything about an entity except its per-frame masks."""

    entity_id: str = Field(min_length=1)
    role: Role
    label: str = Field(default="person", description="class label, e.g. person, bicycle, car, ball")
    caption: Caption | None = None
    sentence: str | None = Field(default=None, description="spoken sentence (predictions)")
    score: float | None = None
    first_alert_frame: int | None = Field(default=None, ge=0, description="predictions: first alert")


class Entity(EntityInfo):
    masks: dict[int, RLE] = Field(default_factory=dict, description="frame -> mask")
    boxes: dict[int, AngleBox] = Field(default_factory=dict, description="frame -> box in angles")

    @property
    def frames(self) -> list[int]:
        return sorted(set(self.masks) | set(self.boxes))

    def info(self) -> EntityInfo:
        return EntityInfo(**self.model_dump(exclude={"masks", "boxes"}))


class Alert(_Strict):
    """One alert as it was decided (predictions, schema 1.1): what was to be said, about what."""

    entity_id: str = Field(min_length=1)
    frame: int = Field(ge=0, description="frame of the decision")
    sentence: str = Field(description="the text queued for speech")
    urgent: bool = False
    box: AngleBox = Field(description="where the entity was when the alert was decided")
    distance_m: float | None = Field(default=None, ge=0, description="estimated distance; None when unknown")
    risk: float | None = Field(default=None, ge=0, le=1)
    direction: str = Field(default="", description="the direction phrase the sentence starts with ('' if none)")
    time_to_contact_s: float | None = Field(default=None, ge=0, description="estimated, orders the speech queue")


def _check_version(version: str) -> str:
    if version not in READABLE_VERSIONS:
        raise ValueError(f"schema_version {version!r} is not one this code reads ({', '.join(READABLE_VERSIONS)})")
    return version


class VideoRecord(_Strict):
    """One video with its entities: the unit that is scored."""

    schema_version: str = SCHEMA_VERSION
    kind: RecordKind
    system: str | None = Field(default=None, description="which system produced a prediction")
    video: Video
    entities: list[Entity] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list, description="predictions: every alert, in order (1.1)")

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, version: str) -> str:
        return _check_version(version)

    @model_validator(mode="after")
    def _consistent(self) -> VideoRecord:
        seen: set[str] = set()
        expected = (self.video.height, self.video.width)
        for index, entity in enumerate(self.entities):
            if entity.entity_id in seen:
                raise ValueError(f"duplicate entity_id {entity.entity_id!r} (entities[{index}])")
            seen.add(entity.entity_id)
            for frame, rle in entity.masks.items():
                if tuple(rle.size) != expected:
                    raise ValueError(
                        f"entities[{index}].masks.{frame}: mask size {list(rle.size)} does not match "
                        f"the video's [height, width] {list(expected)}"
                    )
            for field, frames in (("masks", entity.masks), ("boxes", entity.boxes)):
                for frame in frames:
                    if frame < 0 or (self.video.num_frames is not None and frame >= self.video.num_frames):
                        raise ValueError(
                            f"entities[{index}].{field}.{frame}: frame outside the video "
                            f"(num_frames={self.video.num_frames})"
                        )
            annotated = self.video.annotated_frames
            if self.kind == "ground_truth" and annotated is not None:
                outside = sorted(set(entity.masks) - set(annotated))
                if outside:
                    raise ValueError(f"entities[{index}]: masks on frames {outside[:5]} that are not among the "
                                     "video's annotated_frames")
        for index, alert in enumerate(self.alerts):
            if alert.entity_id not in seen:
                raise ValueError(f"alerts[{index}]: entity {alert.entity_id!r} is not among the entities")
        return self


# --- JSON Lines records -------------------------------------------------------------------


class VideoLine(_Strict):
    record: Literal["video"] = "video"
    schema_version: str = SCHEMA_VERSION
    kind: RecordKind
    system: str | None = None
    video: Video

    @field_validator("schema_version")
    @classmethod
    def _readable(cls, version: str) -> str:
        return _check_version(version)


class EntityLine(_Strict):
    """Entity metadata; a later line for the same id replaces fields it sets (e.g. a refined caption)."""

    record: Literal["entity"] = "entity"
    video_id: str
    entity: EntityInfo


class MaskLine(_Strict):
    record: Literal["mask"] = "mask"
    video_id: str
    entity_id: str
    frame: int = Field(ge=0)
    rle: RLE | None = None
    box: AngleBox | None = None


class AlertLine(_Strict):
    """One alert (schema 1.1); the entity's line comes first."""

    record: Literal["alert"] = "alert"
    video_id: str
    alert: Alert


Line = Annotated[VideoLine | EntityLine | MaskLine | AlertLine, Field(discriminator="record")]
