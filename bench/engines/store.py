"""Where `bench run` keeps predictions: one finished file per video, written under a temporary
name and renamed when complete, so an interrupted job - Ctrl-C, a killed driver, a lost node -
leaves only whole files behind and a rerun redoes exactly the videos without one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vigil360.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
LOG_FILE = "run_log.jsonl"


def dataset_videos(data: Path) -> list[Path]:
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder")
    videos = sorted(p for p in data.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
    if not videos:
        raise UserError(f"--data {data}: no videos ({', '.join(VIDEO_SUFFIXES)}) in the folder")
    return videos


class VideoResult(BaseModel):
    """What a worker reports for one video (also one line of OUT/run_log.jsonl)."""

    model_config = ConfigDict(extra="forbid")

    video_id: str
    job: str = Field("", description="the `bench run` invocation that produced it")
    engine: str = ""
    mode: str = Field(description="the loop's mode: offline (synchronous model stages)")
    worker: str = Field(description="host:pid of the worker process")
    model_loads: int = Field(description="times models were loaded in that worker process so far")
    frames: int = 0
    alerts: int = 0
    seconds: float = Field(0.0, description="wall time of this video on its worker (decode + loop + record)")
    model_runs: dict[str, int] = Field(default_factory=dict, description="finished runs per model stage")
    model_busy_s: dict[str, float] = Field(default_factory=dict, description="seconds spent in each model stage")
    error: str | None = Field(None, description="why the video has no predictions (it is redone on a rerun)")


class PredictionStore:
    def __init__(self, out: Path) -> None:
        self.folder = out / "predictions"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = out / LOG_FILE

    def final(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.jsonl"

    def pending(self, videos: list[Path]) -> list[Path]:
        return [path for path in videos if not self.final(path.stem).exists()]

    def commit(self, result: VideoResult, predictions: str | None) -> None:
        """Write a finished video's predictions (temporary name, then an atomic rename) and log it."""
        if predictions is not None:
            # A name of its own per attempt: two attempts at one video never write the same file.
            partial = self.folder / f".{result.video_id}.{uuid.uuid4().hex[:8]}.partial"
            partial.write_text(predictions, encoding="utf-8")
            os.replace(partial, self.final(result.video_id))
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(result.model_dump_json() + "\n")

    def remove_leftovers(self) -> None:
        """Partial files of attempts that were killed before they finished."""
        for partial in self.folder.glob(".*.partial"):
            partial.unlink(missing_ok=True)
