"""Scoring throughput at dataset scale: synthetic RLE records, streamed, scored without a judge.

Masks are boxes encoded straight to RLE by pycocotools (no pixel arrays), drifting over the
clip; the prediction is the ground truth with every box jittered, one entity dropped and one
hallucinated per video, so the assignment has real work to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from vigil360.records import JsonlWriter
from vigil360.schema import RLE, AnomalyInterval, Entity, Video, VideoRecord

_ROLES = ("perpetrator", "victim", "related")


def _box_rles(boxes: np.ndarray, height: int, width: int) -> list[RLE]:
    rles = coco_mask.frPyObjects(boxes.astype(np.float64), height, width)
    return [RLE(size=(height, width), counts=r["counts"].decode("ascii")) for r in rles]


def synthetic_pair(
    index: int, entities: int, frames: int, width: int, height: int, rng: np.random.Generator
) -> tuple[VideoRecord, VideoRecord]:
    video = Video(
        video_id=f"throughput_{index:05d}", fps=30.0, width=width, height=height, num_frames=frames,
        intervals=[AnomalyInterval(start_frame=frames // 3, end_frame=frames - 1, anomaly_class="Stealing")],
        dataset="synthetic-throughput", location="nowhere",
    )
    gt_entities, pred_entities = [], []
    steps = np.arange(frames)[:, None]
    for k in range(entities):
        size = rng.uniform([0.03 * width, 0.08 * height], [0.08 * width, 0.3 * height])
        start = rng.uniform([0, 0.3 * height], [width - size[0], 0.6 * height])
        drift = rng.uniform(-1.0, 1.0, size=2)
        xy = np.clip(start + steps * drift, 0, [width - size[0], height - size[1]])
        boxes = np.concatenate([xy, np.broadcast_to(size, xy.shape)], axis=1)
        role = _ROLES[k % len(_ROLES)]
        gt_entities.append(Entity(entity_id=f"e{k}", role=role, masks=dict(enumerate(_box_rles(boxes, height, width)))))
        if k == 0:
            continue  # a missed entity
        # Jitter the corners by 3% of the box size: every IoU stays well above 0.5.
        jitter = boxes + rng.normal(0, 1.0, size=boxes.shape) * np.array([0.03 * size[0], 0.03 * size[1], 0, 0])
        jitter[:, :2] = np.clip(jitter[:, :2], 0, [width - size[0], height - size[1]])
        pred_entities.append(
            Entity(entity_id=f"p{k}", role=role, first_alert_frame=frames // 3 + k,
                   masks=dict(enumerate(_box_rles(jitter, height, width))))
        )
    ghost = np.tile([[0.0, 0.0, 0.05 * width, 0.05 * height]], (frames, 1))
    ghost_masks = dict(enumerate(_box_rles(ghost, height, width)))
    pred_entities.append(Entity(entity_id="ghost", role="related", masks=ghost_masks))
    return (
        VideoRecord(kind="ground_truth", video=video, entities=gt_entities),
        VideoRecord(kind="prediction", system="throughput", video=video, entities=pred_entities),
    )


def write_dataset(
    folder: str | Path, videos: int, entities: int, frames: int, width: int, height: int, seed: int = 0
) -> tuple[Path, Path]:
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    gt_path, pred_path = folder / "gt.jsonl", folder / "pred.jsonl"
    for path in (gt_path, pred_path):
        path.unlink(missing_ok=True)
    with JsonlWriter(gt_path) as gt_out, JsonlWriter(pred_path) as pred_out:
        for index in _indices(videos):
            truth, prediction = synthetic_pair(index, entities, frames, width, height, rng)
            gt_out.write_record(truth)
            pred_out.write_record(prediction)
    return gt_path, pred_path


def _indices(count: int) -> Iterator[int]:
    from tqdm import tqdm

    yield from tqdm(range(count), desc="writing synthetic records", unit="video", leave=False)


def timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start
