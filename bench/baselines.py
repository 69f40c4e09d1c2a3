"""The paper's published baseline rows (Tables 2-4), shipped as `baselines.json` beside this file.

They are printed next to our results and always marked as published figures: nothing here is
recomputed, and a row enters the file only once checked against the paper.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.records import RecordError, describe_validation_error, load_json_file

BASELINES_FILE = Path(__file__).with_name("baselines.json")


class BaselineRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str = Field(description="the paper's table, e.g. '2'")
    method: str = Field(description="e.g. InternVL3, VideoLISA, VideoGLaMM, InternVL3+SAM2, Qwen3-VL+SAM2")
    dataset: str = Field(description="e.g. VIEW360+, or one of the eight re-annotated VAD sets")
    role: str | None = Field(None, description="perpetrator or victim/target for Table 4 rows")
    cap: float | None = None
    iou: float | None = None
    fsc: float | None = None
    fpe: float | None = None


class Baselines(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    note: str
    rows: list[BaselineRow]


def load_baselines(path: str | Path = BASELINES_FILE) -> Baselines:
    try:
        return Baselines.model_validate(load_json_file(path))
    except ValidationError as error:
        raise RecordError(describe_validation_error(error, str(path))) from None
