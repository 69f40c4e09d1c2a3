"""Per-video scores (geometry, alerts, direction) and their aggregation into the paper's metrics.

Scales: IoU is a fraction in per-entity rows and a percentage (0-100) in summaries, so that
IoU, Cap and Fsc share a scale and Fsc is their harmonic mean on it.

Definitions the issue left open, decided here:
- Every ground-truth entity counts, `related` ones included; the role breakdown separates them.
- Ground truth annotated on a subset of frames (`Video.annotated_frames`, e.g. VIEW360+'s 1 fps
  sampling): IoU is the mean over those frames only; predicted masks elsewhere are not scored.
- Cap: a missed ground-truth entity (no match) scores 0; a matched one whose prediction has no
  caption scores 0 (it explains nothing); one without a reference caption, or whose judge
  reply never parsed, has no Cap and is left out of Cap means (counted and reported).
- Fsc per entity uses the entity's own Cap and IoU; entities without a Cap are left out.
- An alert is correct when the alerting prediction is part of a match. Time-to-alert is the
  first correct alert minus the onset of the first annotated interval (negative = early).
  Alert precision/recall are per video: a video alerts when any prediction has
  `first_alert_frame`; positive videos are those with annotated intervals.
- Direction: taken at the first alert of the (preferably matched) predicted perpetrator;
  ground truth from the interval's l/c/r label where there is one, else from the ground-truth
  perpetrator's yaw; clock hours must agree within one hour, wrapping at 12.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from vigil360.bench.scoring.assignment import ROLE_GROUP, Assignment, assign
from vigil360.edge.geometry import clock_hour, mask_to_anglebox, sector
from vigil360.masks import decode
from vigil360.schema import Entity, Role, Sector, VideoRecord

CapStatus = Literal["pending", "judged", "missed", "no_reference", "no_caption", "failed", "no_judge"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityScore(_Row):
    video_id: str
    dataset: str | None
    anomaly_class: str | None
    location: str | None
    gt_entity_id: str
    role: Role
    pred_entity_id: str | None = None
    iou: float = 0.0
    matched: bool = False
    reference: str | None = None
    prediction: str | None = None
    cap: float | None = None
    cap_scores: dict[str, int] | None = None
    cap_status: CapStatus = "pending"
    cap_error: str | None = None
    embed: float | None = None


class VideoScore(_Row):
    video_id: str
    dataset: str | None
    anomaly_class: str | None
    location: str | None
    fps: float
    has_prediction: bool
    n_gt: int
    n_pred: int
    false_positive_roles: list[Role]
    onset_frame: int | None
    alert_frame: int | None
    correct_alert_frame: int | None
    false_alerts: int
    direction_gt: Sector | None
    direction_pred: Sector | None
    clock_gt: int | None
    clock_pred: int | None
    entities: list[EntityScore]

    @property
    def false_positives(self) -> int:
        return len(self.false_positive_roles)

    @property
    def time_to_alert_s(self) -> float | None:
        if self.correct_alert_frame is None or self.onset_frame is None:
            return None
        return (self.correct_alert_frame - self.onset_frame) / self.fps


def _yaw_at(entity: Entity, frame: int) -> float | None:
    """The entity's yaw at the frame nearest `frame` where it has a box or a non-empty mask."""
    for candidate in sorted(entity.frames, key=lambda f: (abs(f - frame), f)):
        if candidate in entity.boxes:
            return entity.boxes[candidate].yaw
        box = mask_to_anglebox(decode(entity.masks[candidate]))
        if box is not None:
            return box.yaw
    return None


def _direction(
    gt: VideoRecord, pred: VideoRecord | None, assignment: Assignment
) -> tuple[Sector | None, Sector | None, int | None, int | None]:
    if pred is None or not pred.entities:
        return _gt_sector(gt, None, None), None, None, None
    matched_pred = {p: g for g, p in assignment.matches}
    perpetrators = [i for i, e in enumerate(pred.entities) if e.role == "perpetrator"] or list(
        range(len(pred.entities))
    )

    def preference(i: int) -> tuple[bool, bool, int]:
        # A matched perpetrator first, then the earliest alert.
        alert = pred.entities[i].first_alert_frame
        return (i not in matched_pred, alert is None, alert or 0)

    chosen = min(perpetrators, key=preference)
    entity = pred.entities[chosen]
    frame = entity.first_alert_frame if entity.first_alert_frame is not None else (entity.frames or [0])[0]
    pred_yaw = _yaw_at(entity, frame)
    if chosen in matched_pred:
        gt_entity: Entity | None = gt.entities[matched_pred[chosen]]
    else:
        gt_entity = next((e for e in gt.entities if e.role == "perpetrator"), None)
    gt_yaw = _yaw_at(gt_entity, frame) if gt_entity is not None else None
    # Where the system pointed (its entity's yaw) is the prediction; a direction label in the
    # prediction's video block counts only when the system gave no position at all, so a video
    # block copied from the ground truth cannot score the truth's own labels.
    labelled = [i.direction for i in pred.video.intervals if i.direction is not None]
    pred_sector = sector(pred_yaw) if pred_yaw is not None else (labelled[0] if labelled else None)
    return (
        _gt_sector(gt, gt_yaw, frame),
        pred_sector,
        int(clock_hour(gt_yaw)) if gt_yaw is not None else None,
        int(clock_hour(pred_yaw)) if pred_yaw is not None else None,
    )


def _gt_sector(gt: VideoRecord, gt_yaw: float | None, frame: int | None) -> Sector | None:
    intervals = gt.video.intervals
    covering = [i for i in intervals if frame is not None and i.start_frame <= frame <= i.end_frame]
    for interval in covering + list(intervals):
        if interval.direction is not None:
            return interval.direction
    return sector(gt_yaw) if gt_yaw is not None else None


def score_video(
    gt: VideoRecord, pred: VideoRecord | None, *, threshold: float = 0.5, role_aware: bool = False
) -> VideoScore:
    """Geometry, alerts and direction of one video; caption fields are left `pending`."""
    video = gt.video
    predictions: Sequence[Entity] = pred.entities if pred is not None else ()
    assignment = assign(gt.entities, predictions, threshold=threshold, role_aware=role_aware,
                        annotated_frames=video.annotated_frames)
    where = {"video_id": video.video_id, "dataset": video.dataset, "location": video.location}
    rows = []
    for g, entity in enumerate(gt.entities):
        p = assignment.prediction_for(g)
        matched = p is not None and assignment.is_match(g, p)
        rows.append(
            EntityScore(
                **where,
                anomaly_class=video.anomaly_class,
                gt_entity_id=entity.entity_id,
                role=entity.role,
                pred_entity_id=predictions[p].entity_id if p is not None else None,
                iou=float(assignment.iou[g, p]) if p is not None else 0.0,
                matched=matched,
                reference=entity.caption.text() if entity.caption and entity.caption.text() else None,
                prediction=_caption_text(predictions[p]) if matched else None,
            )
        )
    matched_preds = {p for _, p in assignment.matches}
    alerts = [(e.first_alert_frame, i) for i, e in enumerate(predictions) if e.first_alert_frame is not None]
    correct = [frame for frame, i in alerts if i in matched_preds]
    direction_gt, direction_pred, clock_gt, clock_pred = _direction(gt, pred, assignment)
    return VideoScore(
        **where,
        anomaly_class=video.anomaly_class,
        fps=video.fps,
        has_prediction=pred is not None,
        n_gt=len(gt.entities),
        n_pred=len(predictions),
        false_positive_roles=[predictions[p].role for p in assignment.false_positives()],
        onset_frame=min((i.start_frame for i in video.intervals), default=None),
        alert_frame=min((frame for frame, _ in alerts), default=None),
        correct_alert_frame=min(correct, default=None),
        false_alerts=sum(1 for _, i in alerts if i not in matched_preds),
        direction_gt=direction_gt,
        direction_pred=direction_pred,
        clock_gt=clock_gt,
        clock_pred=clock_pred,
        entities=rows,
    )


def _caption_text(entity: Entity) -> str | None:
    text = entity.caption.text() if entity.caption else ""
    return text or (entity.sentence or None)


# --- aggregation ---------------------------------------------------------------------------


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b <= 0 else 2.0 * a * b / (a + b)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def _clock_close(a: int, b: int) -> bool:
    diff = abs(a - b) % 12
    return min(diff, 12 - diff) <= 1


def summarise(entities: Sequence[EntityScore], videos: Sequence[VideoScore]) -> dict:
    """The paper's metrics (and ours) over a set of entity rows and the videos they come from."""
    matched = [e for e in entities if e.matched]
    with_cap = [e for e in entities if e.cap is not None]
    iou = _mean(100.0 * e.iou for e in entities)
    cap = _mean(e.cap for e in with_cap)
    fsc_entities = [harmonic(e.cap, 100.0 * e.iou) for e in with_cap]
    alerted = [v for v in videos if v.alert_frame is not None]
    positives = [v for v in videos if v.onset_frame is not None]
    tta = [v.time_to_alert_s for v in videos if v.time_to_alert_s is not None]
    directions = [v for v in videos if v.direction_gt is not None and v.direction_pred is not None]
    clocks = [v for v in videos if v.clock_gt is not None and v.clock_pred is not None]
    return {
        "videos": len(videos),
        "gt_entities": len(entities),
        "pred_entities": sum(v.n_pred for v in videos),
        "matches": len(matched),
        "iou": iou,
        "iou_matched": _mean(100.0 * e.iou for e in matched),
        "cap": cap,
        "cap_matched": _mean(e.cap for e in with_cap if e.matched),
        "cap_entities": len(with_cap),
        "cap_failed": sum(e.cap_status == "failed" for e in entities),
        "cap_no_reference": sum(e.reference is None for e in entities),
        "fsc_per_entity": _mean(fsc_entities),
        "fsc_of_means": harmonic(cap, iou) if cap is not None and iou is not None else None,
        "fpe": _mean(v.false_positives for v in videos),
        "embed": _mean(e.embed for e in entities if e.embed is not None),
        "embed_matched": _mean(e.embed for e in matched if e.embed is not None),
        "direction_accuracy": _mean(float(v.direction_gt == v.direction_pred) for v in directions),
        "direction_videos": len(directions),
        "clock_accuracy_pm1": _mean(float(_clock_close(v.clock_gt, v.clock_pred)) for v in clocks),
        "clock_videos": len(clocks),
        "time_to_alert_median_s": float(np.median(tta)) if tta else None,
        "time_to_alert_mean_s": _mean(tta),
        "time_to_alert_videos": len(tta),
        "alert_precision": _mean(float(v.correct_alert_frame is not None) for v in alerted),
        "alert_recall": _mean(float(v.correct_alert_frame is not None) for v in positives),
        "false_alerts": sum(v.false_alerts for v in videos),
    }


def _grouped(
    entities: Sequence[EntityScore], videos: Sequence[VideoScore], key: Callable[[EntityScore | VideoScore], str]
) -> dict[str, dict]:
    groups = sorted({key(v) for v in videos} | {key(e) for e in entities})
    return {
        name: summarise([e for e in entities if key(e) == name], [v for v in videos if key(v) == name])
        for name in groups
    }


def role_breakdown(entities: Sequence[EntityScore], videos: Sequence[VideoScore]) -> dict[str, dict]:
    """Entity metrics per role group; FPE counts only the false positives predicted with that role."""
    out = {}
    for group in sorted(set(ROLE_GROUP.values())):
        rows = [e for e in entities if ROLE_GROUP[e.role] == group]
        summary = summarise(rows, videos)
        fps = [sum(ROLE_GROUP[r] == group for r in v.false_positive_roles) for v in videos]
        summary["fpe"] = _mean(fps)
        summary["gt_entities"] = len(rows)
        out[group] = {k: summary[k] for k in _ENTITY_KEYS}
    return out


_ENTITY_KEYS = (
    "gt_entities", "matches", "iou", "iou_matched", "cap", "cap_matched", "cap_entities",
    "fsc_per_entity", "fsc_of_means", "fpe", "embed", "embed_matched",
)


def breakdowns(entities: Sequence[EntityScore], videos: Sequence[VideoScore]) -> dict[str, dict]:
    return {
        "role": role_breakdown(entities, videos),
        "dataset": _grouped(entities, videos, lambda r: r.dataset or "unknown"),
        "anomaly_class": _grouped(entities, videos, lambda r: r.anomaly_class or "none"),
        "location": _grouped(entities, videos, lambda r: r.location or "unknown"),
    }
