"""Scoring metrics against hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from scoring_builders import H, W, columns, entity, record

from vigil360.bench.scoring.assignment import assign, spatiotemporal_iou
from vigil360.bench.scoring.metrics import EntityScore, role_breakdown, score_video, summarise
from vigil360.masks import encode


def _reference_iou(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> float:
    """Per-frame IoU by pycocotools, averaged over frames where either mask is non-empty."""
    values = []
    for frame in sorted(set(a) | set(b)):
        ma = a.get(frame, np.zeros((H, W), bool))
        mb = b.get(frame, np.zeros((H, W), bool))
        if not ma.any() and not mb.any():
            continue
        ra, rb = (coco_mask.encode(np.asfortranarray(m.astype(np.uint8))) for m in (ma, mb))
        values.append(float(coco_mask.iou([ra], [rb], [0])[0][0]) if ma.any() and mb.any() else 0.0)
    return float(np.mean(values)) if values else 0.0


def test_spatiotemporal_iou_matches_pycocotools_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for _ in range(3):
        gts.append({f: rng.random((H, W)) > 0.6 for f in range(12) if rng.random() > 0.3})
        preds.append({f: rng.random((H, W)) > 0.5 for f in range(12) if rng.random() > 0.3})
    gts[0][3] = np.zeros((H, W), bool)  # an explicitly empty mask counts like a missing one
    preds[1][3] = np.zeros((H, W), bool)
    matrix = spatiotemporal_iou(
        [entity(f"g{i}", m) for i, m in enumerate(gts)], [entity(f"p{i}", m) for i, m in enumerate(preds)]
    )
    expected = np.array([[_reference_iou(g, p) for p in preds] for g in gts])
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    assert matrix.min() > 0 and matrix.max() < 1  # the case is not degenerate


def test_frames_with_both_empty_do_not_count_and_one_sided_frames_count_zero() -> None:
    gt = entity("g", {0: columns(0, 10), 1: columns(0, 10), 2: columns(0, 0), 3: columns(0, 10)})
    pred = entity("p", {0: columns(0, 10), 1: columns(0, 5), 2: columns(0, 0)})
    # frame 0: 1.0, frame 1: 0.5, frame 2: both empty (ignored), frame 3: gt only (0) -> 1.5 / 3
    assert spatiotemporal_iou([gt], [pred])[0, 0] == pytest.approx(0.5)


def test_hungarian_beats_greedy_on_a_constructed_case() -> None:
    # Person A (cols 0-9) holds bag B (cols 0-7). Y covers cols 0-8, X covers cols 2-10.
    gts = [entity("A", {0: columns(0, 10)}), entity("B", {0: columns(0, 8)}, role="victim")]
    preds = [entity("Y", {0: columns(0, 9)}), entity("X", {0: columns(2, 11)})]
    matrix = spatiotemporal_iou(gts, preds)
    np.testing.assert_allclose(matrix, [[9 / 10, 8 / 11], [8 / 9, 6 / 11]])
    # Greedy takes the best pair first (A-Y, 0.9) and is left with B-X (6/11): sum 1.445, one match at 0.6.
    greedy_sum = matrix[0, 0] + matrix[1, 1]
    result = assign(gts, preds, threshold=0.6)
    assert set(result.pairs) == {(0, 1), (1, 0)}
    hungarian_sum = sum(matrix[g, p] for g, p in result.pairs)
    assert hungarian_sum == pytest.approx(8 / 11 + 8 / 9)
    assert hungarian_sum > greedy_sum
    assert len(result.matches) == 2


def test_role_aware_assignment_refuses_cross_role_pairs() -> None:
    gts = [entity("A", {0: columns(0, 10)}, role="perpetrator")]
    preds = [entity("P", {0: columns(0, 10)}, role="target")]
    assert assign(gts, preds).pairs == ((0, 0),)
    assert assign(gts, preds, role_aware=True).pairs == ()
    # victim and target are one group
    gts_v = [entity("A", {0: columns(0, 10)}, role="victim")]
    assert assign(gts_v, preds, role_aware=True).pairs == ((0, 0),)


def test_fpe_counts_two_hallucinations_and_a_below_threshold_pair() -> None:
    truth = record("ground_truth", [entity("A", {0: columns(0, 6)})])
    hallucinating = record(
        "prediction",
        [
            entity("a", {0: columns(0, 6)}),
            entity("ghost1", {0: columns(10, 12)}),
            entity("ghost2", {0: columns(14, 16)}),
        ],
    )
    first = score_video(truth, hallucinating)
    assert first.false_positives == 2
    truth2 = record("ground_truth", [entity("A", {0: columns(0, 6)})], video_id="v2")
    exact = record("prediction", [entity("a", {0: columns(0, 6)})], video_id="v2")
    second = score_video(truth2, exact)
    assert second.false_positives == 0
    summary = summarise(first.entities + second.entities, [first, second])
    assert summary["fpe"] == pytest.approx(1.0)
    assert summary["iou"] == pytest.approx(100.0)
    # Assigned below the threshold: IoU 2/6 keeps its value for IoU, but it is a false positive.
    weak = score_video(truth, record("prediction", [entity("w", {0: columns(4, 8)})]))
    assert weak.entities[0].iou == pytest.approx(2 / 8) and not weak.entities[0].matched
    assert weak.false_positives == 1


def test_empty_predictions_give_iou_zero_and_fpe_zero() -> None:
    truth = record(
        "ground_truth", [entity("A", {0: columns(0, 6)}), entity("B", {0: columns(8, 9)}, role="victim")]
    )
    for prediction in (record("prediction", []), None):
        scored = score_video(truth, prediction)
        summary = summarise(scored.entities, [scored])
        assert summary["iou"] == 0.0 and summary["fpe"] == 0.0 and summary["matches"] == 0
        assert summary["iou_matched"] is None
        assert scored.has_prediction is (prediction is not None)


def _row(cap: float | None, iou: float, role: str = "perpetrator", matched: bool = True) -> EntityScore:
    return EntityScore(
        video_id="v",
        dataset=None,
        anomaly_class=None,
        location=None,
        gt_entity_id="e",
        role=role,
        iou=iou,
        matched=matched,
        cap=cap,
        cap_status="judged" if cap is not None else "failed",
    )


def test_both_fsc_aggregations() -> None:
    rows = [_row(80.0, 0.6), _row(20.0, 1.0), _row(None, 0.9)]  # the failed judge row has no Cap
    summary = summarise(rows, [])
    per_entity = (2 * 80 * 60 / 140 + 2 * 20 * 100 / 120) / 2
    assert summary["fsc_per_entity"] == pytest.approx(per_entity)  # 50.952
    assert summary["cap"] == pytest.approx(50.0)
    assert summary["iou"] == pytest.approx(100 * (0.6 + 1.0 + 0.9) / 3)
    assert summary["fsc_of_means"] == pytest.approx(2 * 50.0 * summary["iou"] / (50.0 + summary["iou"]))
    assert summary["fsc_of_means"] > summary["fsc_per_entity"]
    assert summary["cap_failed"] == 1


def test_role_split() -> None:
    truth = record(
        "ground_truth",
        [
            entity("thief", {0: columns(0, 6)}),
            entity("owner", {0: columns(10, 14)}, role="victim"),
            entity("bag", {0: columns(16, 18)}, role="target"),
        ],
    )
    prediction = record(
        "prediction", [entity("t", {0: columns(0, 6)}), entity("x", {0: columns(6, 8)}, role="victim")]
    )
    scored = score_video(truth, prediction)
    roles = role_breakdown(scored.entities, [scored])
    assert roles["perpetrator"]["iou"] == pytest.approx(100.0)
    assert roles["victim/target"]["iou"] == pytest.approx(0.0)
    assert roles["victim/target"]["gt_entities"] == 2
    assert roles["victim/target"]["fpe"] == pytest.approx(1.0)
    assert roles["perpetrator"]["fpe"] == pytest.approx(0.0)


def test_time_to_alert_direction_and_alert_precision_recall() -> None:
    truth = record(
        "ground_truth",
        [entity("A", {f: columns(0, 6) for f in range(30, 60)}, yaw=-120.0)],
        onset=30,
        direction="left_back",
    )
    prediction = record(
        "prediction", [entity("a", {f: columns(0, 6) for f in range(30, 60)}, alert=45, yaw=-100.0)]
    )
    scored = score_video(truth, prediction)
    assert scored.time_to_alert_s == pytest.approx(0.5)
    assert scored.direction_gt == "left_back" and scored.direction_pred == "left_back"
    assert (scored.clock_gt, scored.clock_pred) == (8, 9)
    # A second video: the alert comes from a hallucinated entity -> a false alert, no TTA.
    truth2 = record("ground_truth", [entity("A", {0: columns(0, 6)})], video_id="v2", onset=0)
    wrong = record("prediction", [entity("g", {0: columns(12, 18)}, alert=0)], video_id="v2")
    scored2 = score_video(truth2, wrong)
    assert scored2.false_alerts == 1 and scored2.time_to_alert_s is None
    summary = summarise(scored.entities + scored2.entities, [scored, scored2])
    assert summary["alert_precision"] == pytest.approx(0.5)
    assert summary["alert_recall"] == pytest.approx(0.5)
    # v2's direction is taken at the ghost (yaw +90, right back) against the true thief (yaw -126, left back).
    assert (scored2.direction_gt, scored2.direction_pred, scored2.clock_gt, scored2.clock_pred) == (
        "left_back",
        "right_back",
        8,
        3,
    )
    assert summary["direction_accuracy"] == pytest.approx(0.5)
    assert summary["clock_accuracy_pm1"] == pytest.approx(0.5)
    assert summary["time_to_alert_median_s"] == pytest.approx(0.5)


def test_mask_size_mismatch_is_an_error_not_a_skew() -> None:
    """pycocotools compares RLEs of different sizes without complaint; the scorer refuses."""
    good = entity("g", {0: columns(0, 5)})
    other = entity("p", {0: columns(0, 5)})
    other.masks[0] = encode(np.ones((H, W + 2), dtype=bool))
    with pytest.raises(ValueError, match=r"mask sizes differ"):
        spatiotemporal_iou([good], [other])


def test_long_tracks_beyond_pycocotools_batch_limit() -> None:
    """pycocotools' batched area breaks past 255 masks; a 300-frame track must still score."""
    gt = entity("g", {f: columns(0, 6) for f in range(300)})
    pred = entity("p", {f: columns(0, 6) for f in range(150)})
    assert spatiotemporal_iou([gt], [pred])[0, 0] == pytest.approx(0.5)


def test_iou_over_annotated_frames_only_when_ground_truth_is_sampled() -> None:
    """Ground truth at 1 frame in 3 (frames 0, 3, 6): the prediction's masks in between are not
    counted as misses; on the annotated frames it scores 1.0, 0.5 and 0 (gt only) -> 0.5."""
    gt = entity("g", {0: columns(0, 10), 3: columns(0, 10), 6: columns(0, 10)})
    pred = entity("p", {f: columns(0, 10) for f in range(6)} | {3: columns(0, 5)})
    sampled = record("ground_truth", [gt])
    sampled.video.annotated_frames = [0, 3, 6]
    assert spatiotemporal_iou([gt], [pred], annotated_frames=[0, 3, 6])[0, 0] == pytest.approx(0.5)
    assert score_video(sampled, record("prediction", [pred])).entities[0].iou == pytest.approx(0.5)
    # Read as dense ground truth, the same files would count frames 1, 2, 4, 5 as misses: 1.5 / 7.
    assert score_video(record("ground_truth", [gt]), record("prediction", [pred])).entities[0].iou == \
        pytest.approx(1.5 / 7)


def test_ground_truth_masks_off_the_annotated_frames_are_refused() -> None:
    from pydantic import ValidationError

    from vigil360.schema import Video, VideoRecord

    video = Video(video_id="v", fps=30.0, width=W, height=H, annotated_frames=[0, 30])
    with pytest.raises(ValidationError, match="not among the video's annotated_frames"):
        VideoRecord(kind="ground_truth", video=video, entities=[entity("g", {15: columns(0, 4)})])
