"""One-to-one assignment of predicted entities to ground-truth entities, per video.

A pair's spatio-temporal IoU is the mean of per-frame mask IoU over the frames where either
side has a non-empty mask (frames where both are empty do not count; a frame where only one
side has a mask counts as IoU 0). When the ground truth is annotated on a subset of frames only
(VIEW360+'s tool samples videos at 1 fps), the mean runs over those frames: a prediction's mask on
a frame nobody annotated is neither right nor wrong. Per-frame IoUs come from pycocotools' RLE
operations, one call per frame for all pairs present on it, so masks are never decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as coco_mask
from scipy.optimize import linear_sum_assignment

from vigil360.masks import to_coco
from vigil360.schema import Entity, Role

# Role-aware matching treats victim and target as one group: the datasets use either word
# for "whom or what the anomaly is done to", and a system cannot be expected to guess which.
ROLE_GROUP: dict[Role, str] = {
    "perpetrator": "perpetrator",
    "victim": "victim/target",
    "target": "victim/target",
    "related": "related",
}


def _nonempty_masks(entity: Entity, only: set[int] | None = None) -> dict[int, dict]:
    """frame -> COCO RLE dict, for the frames (of `only`, if given) where the mask has a pixel."""
    frames = sorted(entity.masks if only is None else set(entity.masks) & only)
    if not frames:
        return {}
    rles = [to_coco(entity.masks[f]) for f in frames]
    # pycocotools' batched area overflows a uint8 count beyond 255 masks (with numpy 2): batch by 255.
    areas = np.concatenate([coco_mask.area(rles[i : i + 255]) for i in range(0, len(rles), 255)])
    return {f: rle for f, rle, a in zip(frames, rles, areas, strict=True) if a > 0}


def spatiotemporal_iou(ground_truth: Sequence[Entity], predictions: Sequence[Entity],
                       annotated_frames: Sequence[int] | None = None) -> np.ndarray:
    """IoU matrix of shape (len(ground_truth), len(predictions)), over `annotated_frames` when the
    ground truth covers only those (None: every frame)."""
    sizes = {tuple(rle.size) for e in (*ground_truth, *predictions) for rle in e.masks.values()}
    if len(sizes) > 1:
        # pycocotools would compare them anyway and return a meaningless number.
        raise ValueError(f"mask sizes differ within one video: {sorted(sizes)}")
    only = None if annotated_frames is None else set(annotated_frames)
    gt_masks = [_nonempty_masks(e, only) for e in ground_truth]
    pred_masks = [_nonempty_masks(e, only) for e in predictions]
    n_gt, n_pred = len(gt_masks), len(pred_masks)
    inter_sum = np.zeros((n_gt, n_pred))
    both = np.zeros((n_gt, n_pred))
    gt_by_frame: dict[int, list[int]] = {}
    for g, masks in enumerate(gt_masks):
        for frame in masks:
            gt_by_frame.setdefault(frame, []).append(g)
    pred_by_frame: dict[int, list[int]] = {}
    for p, masks in enumerate(pred_masks):
        for frame in masks:
            pred_by_frame.setdefault(frame, []).append(p)
    for frame, gts in gt_by_frame.items():
        preds = pred_by_frame.get(frame)
        if not preds:
            continue
        ious = coco_mask.iou(
            [pred_masks[p][frame] for p in preds], [gt_masks[g][frame] for g in gts], [0] * len(gts)
        )
        ious = np.asarray(ious).reshape(len(preds), len(gts))
        idx = np.ix_(gts, preds)
        inter_sum[idx] += ious.T
        both[idx] += 1
    gt_counts = np.array([len(m) for m in gt_masks], dtype=float)
    pred_counts = np.array([len(m) for m in pred_masks], dtype=float)
    either = gt_counts[:, None] + pred_counts[None, :] - both
    return np.divide(inter_sum, either, out=np.zeros_like(inter_sum), where=either > 0)


@dataclass(frozen=True)
class Assignment:
    """`pairs` holds (gt index, prediction index) for every assigned pair, matched or not."""

    iou: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    threshold: float

    def prediction_for(self, gt_index: int) -> int | None:
        return next((p for g, p in self.pairs if g == gt_index), None)

    def is_match(self, gt_index: int, pred_index: int) -> bool:
        return bool(self.iou[gt_index, pred_index] >= self.threshold)

    @property
    def matches(self) -> list[tuple[int, int]]:
        return [(g, p) for g, p in self.pairs if self.is_match(g, p)]

    def false_positives(self) -> list[int]:
        """Predictions that are not part of a match: unassigned, or assigned below the threshold."""
        matched = {p for _, p in self.matches}
        return [p for p in range(self.iou.shape[1]) if p not in matched]


def assign(
    ground_truth: Sequence[Entity],
    predictions: Sequence[Entity],
    *,
    threshold: float = 0.5,
    role_aware: bool = False,
    iou: np.ndarray | None = None,
    annotated_frames: Sequence[int] | None = None,
) -> Assignment:
    """Hungarian assignment maximising the summed spatio-temporal IoU.

    With `role_aware`, a prediction can only take a ground-truth entity of its role group;
    a pair across groups is never assigned. Pairs of IoU 0 are not kept: they would only
    decide ties between nothing and nothing, and keeping them would make the assignment of
    an entity with no overlap at all depend on the solver's order.
    """
    matrix = spatiotemporal_iou(ground_truth, predictions, annotated_frames) if iou is None else iou
    if matrix.size == 0:
        return Assignment(matrix, (), threshold)
    weights = matrix.copy()
    if role_aware:
        gt_groups = np.array([ROLE_GROUP[e.role] for e in ground_truth])
        pred_groups = np.array([ROLE_GROUP[e.role] for e in predictions])
        weights[gt_groups[:, None] != pred_groups[None, :]] = -1.0
    rows, cols = linear_sum_assignment(weights, maximize=True)
    pairs = tuple((int(g), int(p)) for g, p in zip(rows, cols, strict=True) if weights[g, p] > 0)
    return Assignment(matrix, pairs, threshold)
