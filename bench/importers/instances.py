"""VIEW360+ `*.instances.json` sidecars: per-entity text and visibility span, plus the video caption.

Our reading of the format (frames 0-based, exit inclusive):

    {
      "video_caption": "A man in a black coat takes a bag from the table behind the wearer.",
      "instances": {
        "actor0":   {"text": "...", "enter_frame": 12, "exit_frame": 240, "missing_frames": [90, 91]},
        "subject0": {"text": "...", "enter_frame": 0,  "exit_frame": 299}
      }
    }

`instances` may also be a list of objects carrying their id as `id` (or `entity_id`).
Unknown keys are errors naming the JSON path, so a real release that differs fails loudly
instead of importing half its content. Where the real release differs, this module is where
that is fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vigil360.records import RecordError, describe_validation_error, load_json_file


class InstanceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = ""
    enter_frame: int = Field(ge=0)
    exit_frame: int = Field(ge=0, description="inclusive")
    missing_frames: list[int] = Field(default_factory=list, description="frames inside the span where it is hidden")

    @model_validator(mode="after")
    def _consistent(self) -> InstanceInfo:
        if self.exit_frame < self.enter_frame:
            raise ValueError(f"exit_frame {self.exit_frame} is before enter_frame {self.enter_frame}")
        outside = [f for f in self.missing_frames if not self.enter_frame <= f <= self.exit_frame]
        if outside:
            raise ValueError(f"missing_frames {outside[:5]} lie outside [enter_frame, exit_frame]")
        return self

    @property
    def visible_frames(self) -> list[int]:
        missing = set(self.missing_frames)
        return [f for f in range(self.enter_frame, self.exit_frame + 1) if f not in missing]


class VideoInstances(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_caption: str | None = None
    instances: dict[str, InstanceInfo] = Field(default_factory=dict)


def _keyed(raw: Any, where: str) -> Any:
    """Turn a list of instances carrying their own id into the dict form."""
    if not isinstance(raw, dict) or not isinstance(raw.get("instances"), list):
        return raw
    keyed: dict[str, Any] = {}
    for index, item in enumerate(raw["instances"]):
        if not isinstance(item, dict):
            raise RecordError(f"{where}: instances[{index}] is not an object")
        item = dict(item)
        entity_id = item.pop("id", None) or item.pop("entity_id", None)
        if not entity_id:
            raise RecordError(f"{where}: instances[{index}] has no 'id'")
        if entity_id in keyed:
            raise RecordError(f"{where}: instances[{index}]: duplicate id {entity_id!r}")
        keyed[entity_id] = item
    return {**raw, "instances": keyed}


def read_instances_file(path: str | Path) -> VideoInstances:
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such instances file")
    raw = _keyed(load_json_file(path), str(path))
    try:
        return VideoInstances.model_validate(raw)
    except ValidationError as error:
        raise RecordError(describe_validation_error(error, str(path))) from None
