"""One worker's side of `bench run`: load SAM2 and the VLM once, then run videos through the loop
in offline mode (every frame waits for the model results it scheduled) and return predictions."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vigil360.bench.engines.store import VideoResult
from vigil360.errors import UserError

# Model loads in this process: a worker that loads its models once per video shows it here.
_model_loads = 0


class SystemSpec(BaseModel):
    """What every worker needs to build the same system (sent to Ray actors as JSON)."""

    model_config = ConfigDict(extra="forbid")

    settings: dict = Field(default_factory=dict, description="vigil360 Settings (as JSON)")
    sam2: str | None = Field(None, description="exported SAM2 folder (visible to every worker at this path)")
    vlm: str | None = Field(None, description="VLM folder or server URL")
    max_frames: int | None = None
    threads: int | None = Field(None, description="model compute threads per worker (None: all cores but one)")


class VideoRunner:
    def __init__(self, spec: SystemSpec) -> None:
        global _model_loads
        from vigil360.config import Settings
        from vigil360.edge.run_cli import load_sam2_tracker, load_vlm

        self.spec = spec
        self.settings = Settings.model_validate(spec.settings)
        self.sam2 = load_sam2_tracker(spec.sam2, spec.threads) if spec.sam2 else None
        self.grounder, self.captioner = (load_vlm(spec.vlm, self.settings, spec.threads) if spec.vlm
                                         else (None, None))
        _model_loads += 1
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, path: str | Path) -> tuple[VideoResult, str | None]:
        """(result, predictions JSONL text); a video that cannot be read gives its error instead."""
        from vigil360.edge.loop import EdgeLoop
        from vigil360.edge.recorder import PredictionRecorder
        from vigil360.edge.source import open_source
        from vigil360.edge.tracking360 import Tracker360
        from vigil360.schema import Video

        path = Path(path)
        start = time.perf_counter()
        result = VideoResult(video_id=path.stem, mode="offline", worker=self.worker, model_loads=_model_loads)
        with tempfile.TemporaryDirectory(prefix="vigil360-bench-") as scratch:
            predictions = Path(scratch) / "predictions.jsonl"
            try:
                frames = open_source(path, fit="check")
                video = Video(video_id=path.stem, fps=frames.fps, width=frames.width, height=frames.height,
                              num_frames=frames.num_frames)
                tracker = None if self.sam2 is None else Tracker360(self.sam2, frames.width, frames.height)
                loop = EdgeLoop(frames, self.settings, recorder=PredictionRecorder(predictions, video),
                                mask_tracker=tracker, grounder=self.grounder, captioner=self.captioner,
                                max_frames=self.spec.max_frames, mode="offline")
                summary = loop.run()
            except UserError as error:  # a damaged or unreadable video: reported, the others go on
                result.error = str(error)
                result.seconds = round(time.perf_counter() - start, 3)
                return result, None
            result.frames, result.alerts = summary.frames, summary.alerts
            stages = summary.profile.model_stages
            result.model_runs = {name: stage.finished for name, stage in stages.items()}
            result.model_busy_s = {name: stage.busy_s for name, stage in stages.items()}
            result.seconds = round(time.perf_counter() - start, 3)
            return result, predictions.read_text(encoding="utf-8")
