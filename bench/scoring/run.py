"""Score a prediction set against ground truth: streaming, resumable, judge calls batched.

Per-video results are appended to `per_video.jsonl` in the output folder as each chunk of
videos finishes; a rerun with the same settings skips the videos already there, so an
interrupted run continues where it stopped. `run.json` records the settings the results were
scored with; a rerun with different settings is refused rather than mixing two runs.

Bad input, decided per case:
- a record that does not validate, a duplicate video id, a prediction whose frame size
  differs from its ground truth, a prediction file holding ground truth: error;
- a ground-truth video with no prediction: scored as an empty prediction (all its entities
  missed) and counted as a warning;
- a predicted video absent from the ground truth: not scored (nothing to score it against),
  counted and listed as a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.bench.scoring.index import RecordIndex
from vigil360.bench.scoring.metrics import EntityScore, VideoScore, score_video
from vigil360.errors import UserError
from vigil360.records import RecordError, atomic_write_text

PER_VIDEO = "per_video.jsonl"
RUN_FILE = "run.json"


class ScoreSettings(BaseModel):
    """Everything the numbers depend on; stored with the results and printed with them."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0.0, le=1.0, description="IoU at or above which an assigned pair is a match")
    role_aware: bool = Field(False, description="assign predictions only to ground truth of the same role group")
    judge_model: str | None = Field(None, description="LLM judge model; None: no Cap")
    judge_prompt_version: str | None = None
    embed_model: str | None = Field(None, description="sentence-embedding model of the offline score")


class Warnings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gt_without_prediction: list[str] = Field(default_factory=list)
    prediction_without_gt: list[str] = Field(default_factory=list)


def _fill_captions(videos: list[VideoScore], judge, embedder, progress: bool = False) -> None:
    """Cap (and the offline embedding score) for every entity row of a chunk of videos."""
    to_score: list[EntityScore] = []
    for row in (e for v in videos for e in v.entities):
        if row.reference is None:
            # Nothing to compare against, matched or not: no Cap rather than a zero that skews it.
            row.cap_status = "no_reference"
        elif not row.matched:
            row.cap_status = "missed"
            row.cap = 0.0 if judge is not None else None
            row.embed = 0.0 if embedder is not None else None
        elif row.prediction is None:
            row.cap_status = "no_caption"
            row.cap = 0.0 if judge is not None else None
            row.embed = 0.0 if embedder is not None else None
        else:
            row.cap_status = "no_judge" if judge is None else "pending"
            to_score.append(row)
    pairs = [(row.reference, row.prediction) for row in to_score]
    if judge is not None:
        for row, verdict in zip(to_score, judge.score_many(pairs, progress=progress), strict=True):
            row.cap_scores = verdict.scores
            row.cap = verdict.cap
            row.cap_status = "judged" if verdict.scores is not None else "failed"
            row.cap_error = verdict.error
    if embedder is not None:
        for row, value in zip(to_score, embedder.score_many(pairs), strict=True):
            row.embed = value


def _load_done(path: Path) -> list[VideoScore]:
    """Results of an earlier run; a torn last line (a crash mid-write) is dropped and redone."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    done = []
    for number, line in enumerate(lines, start=1):
        try:
            done.append(VideoScore.model_validate_json(line))
        except ValidationError:
            if number != len(lines):
                raise RecordError(f"{path}:{number}: corrupt result line; rerun with --restart") from None
            atomic_write_text(path, "".join(item + "\n" for item in lines[:-1]))
    return done


def _check_settings(out_dir: Path, settings: ScoreSettings, restart: bool) -> None:
    run_file = out_dir / RUN_FILE
    if restart:
        (out_dir / PER_VIDEO).unlink(missing_ok=True)
    elif run_file.exists() and (out_dir / PER_VIDEO).exists():
        earlier = ScoreSettings.model_validate_json(run_file.read_text(encoding="utf-8"))
        if earlier != settings:
            raise UserError(
                f"{out_dir} holds results scored with other settings ({earlier.model_dump()}); "
                "use another --out or pass --restart"
            )
    atomic_write_text(run_file, settings.model_dump_json(indent=2) + "\n")


def score_dataset(
    pred: str | Path,
    gt: str | Path,
    out_dir: str | Path,
    settings: ScoreSettings,
    *,
    judge=None,
    embedder=None,
    restart: bool = False,
    chunk_size: int = 16,
    progress: bool = True,
    strict: bool = False,
) -> tuple[list[VideoScore], Warnings]:
    """Score every ground-truth video; returns all per-video results (earlier runs' included)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_index = RecordIndex(gt, "ground_truth", strict=strict)
    pred_index = RecordIndex(pred, "prediction", strict=strict)
    _check_settings(out_dir, settings, restart)
    results = _load_done(out_dir / PER_VIDEO)
    done = {v.video_id for v in results}
    stale = sorted(done - set(gt_index.ids))
    if stale:
        raise UserError(f"{out_dir / PER_VIDEO} holds videos not in the ground truth ({stale[:3]}); pass --restart")
    chunk: list[VideoScore] = []

    def flush() -> None:
        _fill_captions(chunk, judge, embedder, progress)
        with open(out_dir / PER_VIDEO, "a", encoding="utf-8") as handle:
            handle.write("".join(v.model_dump_json() + "\n" for v in chunk))
            handle.flush()
        results.extend(chunk)
        chunk.clear()

    todo = [video_id for video_id in gt_index.ids if video_id not in done]
    for video_id in tqdm(todo, desc="videos", unit="video", disable=not progress):
        truth = gt_index.load(video_id)
        prediction = pred_index.load(video_id) if video_id in pred_index else None
        if prediction is not None:
            expected = (truth.video.height, truth.video.width)
            got = (prediction.video.height, prediction.video.width)
            if got != expected:
                raise UserError(
                    f"video {video_id!r}: prediction frame size {list(got)} differs from the ground truth's "
                    f"{list(expected)} (masks must be in the ground truth's equirectangular pixels)"
                )
        chunk.append(score_video(truth, prediction, threshold=settings.threshold, role_aware=settings.role_aware))
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    order = {video_id: i for i, video_id in enumerate(gt_index.ids)}
    results.sort(key=lambda v: order[v.video_id])
    warnings = Warnings(
        gt_without_prediction=[v.video_id for v in results if not v.has_prediction],
        prediction_without_gt=sorted(set(pred_index.ids) - set(gt_index.ids)),
    )
    atomic_write_text(out_dir / "warnings.json", json.dumps(warnings.model_dump(), indent=2) + "\n")
    return results, warnings
