"""`vigil360 bench run`: run the vigil360 loop over a dataset folder, then score it.

The folder holds videos (`<video_id>.mp4`) and, unless `--gt` points elsewhere, their ground
truth (`<video_id>.gt.json`, as `vigil360 synth` writes). Each video's predictions go to
`OUT/predictions/<video_id>.jsonl`, written under a temporary name and renamed when the video
is done, so an interrupted run redoes only the video it was in; scoring is resumable too.
"""

from __future__ import annotations

import os
from pathlib import Path

from vigil360.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


def dataset_videos(data: Path) -> list[Path]:
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder")
    videos = sorted(p for p in data.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
    if not videos:
        raise UserError(f"--data {data}: no videos ({', '.join(VIDEO_SUFFIXES)}) in the folder")
    return videos


def run_system(
    data: Path,
    out: Path,
    *,
    settings_file: Path | None = None,
    sam2: str | None = None,
    vlm: str | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> Path:
    """Predictions for every video of `data` (skipping those already done); returns their folder."""
    from tqdm import tqdm

    from vigil360.config import Settings
    from vigil360.edge.loop import EdgeLoop
    from vigil360.edge.recorder import PredictionRecorder
    from vigil360.edge.run_cli import load_mask_tracker, load_vlm
    from vigil360.edge.source import open_source
    from vigil360.schema import Video

    settings = Settings.from_file(settings_file) if settings_file else Settings()
    pred_dir = out / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    grounder, captioner = load_vlm(vlm, settings) if vlm else (None, None)
    for path in tqdm(dataset_videos(data), desc="vigil360 loop", unit="video", disable=not progress):
        final = pred_dir / f"{path.stem}.jsonl"
        if final.exists():
            continue
        partial = pred_dir / f".{path.stem}.partial.jsonl"
        frames = open_source(path, fit="check")
        video = Video(video_id=path.stem, fps=frames.fps, width=frames.width, height=frames.height,
                      num_frames=frames.num_frames)
        tracker = load_mask_tracker(sam2, frames.width, frames.height) if sam2 else None
        loop = EdgeLoop(frames, settings, recorder=PredictionRecorder(partial, video), mask_tracker=tracker,
                        grounder=grounder, captioner=captioner, max_frames=max_frames)
        loop.run()
        os.replace(partial, final)
    return pred_dir
