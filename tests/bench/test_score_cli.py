"""`vigil360 bench score` end to end on synthetic scenarios: ground truth vs a perturbed copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from fake_judge import FakeJudgeServer
from pycocotools import mask as coco_mask
from typer.testing import CliRunner

from vigil360.bench.cli import register
from vigil360.bench.synthetic import ScenarioSpec, ground_truth
from vigil360.masks import encode, to_coco
from vigil360.records import write_jsonl
from vigil360.schema import Entity, VideoRecord

SMALL = {"width": 480, "height": 240, "fps": 15.0, "duration_s": 3.0}


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _nonempty_frames(entity: Entity) -> list[int]:
    return [f for f, rle in sorted(entity.masks.items()) if coco_mask.area(to_coco(rle)) > 0]


def _as_prediction(truth: VideoRecord, entities: list[Entity], video_id: str | None = None) -> VideoRecord:
    video = truth.video if video_id is None else truth.video.model_copy(update={"video_id": video_id})
    return VideoRecord(kind="prediction", system="perturbed", video=video, entities=entities)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two synthetic clips; the prediction copies one exactly (plus two ghosts) and clips the other."""
    folder = tmp_path_factory.mktemp("scenario")
    stealing, _ = ground_truth(ScenarioSpec(kind="stealing", seed=7, cross_seam=True, bystanders=1, **SMALL))
    collide, _ = ground_truth(ScenarioSpec(kind="collide", seed=3, **SMALL))
    assert [len(r.entities) for r in (stealing, collide)] == [1, 1]
    onset = stealing.video.intervals[0].start_frame
    thief = stealing.entities[0].model_copy(update={"first_alert_frame": onset + 3})
    ghost_mask = np.zeros((240, 480), dtype=bool)
    ghost_mask[0:10, 0:10] = True  # the sky straight behind: no true entity there
    ghosts = [
        Entity(
            entity_id=f"ghost{i}",
            role="related",
            masks={f: encode(ghost_mask) for f in range(5)},
            caption=stealing.entities[0].caption,
        )
        for i in range(2)
    ]
    rider = collide.entities[0]
    frames = _nonempty_frames(rider)
    kept = frames[: (3 * len(frames)) // 4]
    clipped = rider.model_copy(
        update={
            "masks": {f: rider.masks[f] for f in kept},
            "boxes": {},
            "caption": rider.caption.model_copy(update={"appearance": "a small dog"}),
        }
    )
    gt_path, pred_path = folder / "gt.jsonl", folder / "pred.jsonl"
    write_jsonl(gt_path, [stealing, collide])
    write_jsonl(
        pred_path,
        [
            _as_prediction(collide, [clipped]),  # order differs from the ground truth on purpose
            _as_prediction(stealing, [thief, *ghosts]),
            _as_prediction(stealing, [], video_id="not-in-gt"),
        ],
    )
    return {"gt": gt_path, "pred": pred_path, "rider_iou": len(kept) / len(frames), "fps": stealing.video.fps}


def _score(scenario: dict, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        _app(),
        [
            "bench",
            "score",
            "--pred",
            str(scenario["pred"]),
            "--gt",
            str(scenario["gt"]),
            "--out",
            str(out),
            *extra,
        ],
    )
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


def test_score_with_judge_gives_the_expected_numbers_and_resumes(scenario: dict, tmp_path: Path) -> None:
    out = tmp_path / "score"
    with FakeJudgeServer() as judge:
        code, output = _score(
            scenario, out, "--judge", judge.url, "--judge-model", "fake-judge", "--no-embed"
        )
        assert code == 0, output
        results = json.loads((out / "results.json").read_text())
        overall = results["overall"]
        rider_iou = 100 * scenario["rider_iou"]
        assert overall["videos"] == 2 and overall["matches"] == 2
        assert overall["iou"] == pytest.approx((100 + rider_iou) / 2)
        assert overall["iou_matched"] == pytest.approx((100 + rider_iou) / 2)
        assert overall["cap"] == pytest.approx((100 + 40) / 2)  # exact caption 5/5/5; wrong one 1/2/3
        assert overall["fsc_per_entity"] == pytest.approx((100 + 2 * 40 * rider_iou / (40 + rider_iou)) / 2)
        assert overall["fsc_of_means"] == pytest.approx(2 * 70 * overall["iou"] / (70 + overall["iou"]))
        assert overall["fpe"] == pytest.approx(1.0)
        assert overall["time_to_alert_median_s"] == pytest.approx(3 / scenario["fps"])
        assert overall["alert_precision"] == 1.0 and overall["alert_recall"] == 0.5
        assert results["settings"]["judge_model"] == "fake-judge"
        assert results["settings"]["judge_prompt_version"].startswith("vigil360-cap")
        assert results["warnings"]["prediction_without_gt"] == 1
        assert results["breakdowns"]["role"]["perpetrator"]["gt_entities"] == 2
        report = (out / "report.md").read_text()
        assert "fake-judge" in report and "Fsc (of means)" in report and "published figures" in report
        for png in ("per_class.png", "time_to_alert_cdf.png", "iou_histogram.png"):
            assert (out / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in report
        rows = (out / "per_entity.csv").read_text().splitlines()
        assert len(rows) == 3 and rows[0].startswith("video_id,")
        calls = len(judge.requests)
        assert calls == 2

        # A rerun skips scored videos; an interrupted one (torn last line) redoes only what was lost,
        # and the judge cache makes the redo free.
        per_video = out / "per_video.jsonl"
        first_line = per_video.read_text().splitlines()[0]
        per_video.write_text(first_line + "\n" + '{"video_id": "synth-coll')
        code, output = _score(
            scenario, out, "--judge", judge.url, "--judge-model", "fake-judge", "--no-embed"
        )
        assert code == 0, output
        assert len(judge.requests) == calls
        assert json.loads((out / "results.json").read_text())["overall"] == overall
        assert len(per_video.read_text().splitlines()) == 2

        # Other settings in the same folder are refused rather than mixed.
        code, output = _score(scenario, out, "--judge", judge.url, "--judge-model", "other", "--no-embed")
        assert code != 0 and "other settings" in output


def test_score_without_judge_reports_no_cap(scenario: dict, tmp_path: Path) -> None:
    code, output = _score(scenario, tmp_path / "s", "--judge", "none", "--no-embed", "--threshold", "0.8")
    assert code == 0, output
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["overall"]["cap"] is None and results["overall"]["fsc_per_entity"] is None
    assert results["settings"]["threshold"] == 0.8
    # At 0.8 the clipped rider (IoU 0.75) is no longer a match but keeps its IoU.
    assert results["overall"]["matches"] == 1
    assert results["overall"]["iou"] == pytest.approx((100 + 100 * scenario["rider_iou"]) / 2)


def test_swapped_inputs_and_bad_sizes_are_errors(scenario: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "bench",
            "score",
            "--pred",
            str(scenario["gt"]),
            "--gt",
            str(scenario["pred"]),
            "--out",
            str(tmp_path / "x"),
            "--no-embed",
        ],
    )
    assert result.exit_code != 0 and "swapped" in str(result.exception)
    gt_lines = scenario["gt"].read_text().splitlines()
    header = json.loads(gt_lines[0])
    header["kind"] = "prediction"
    header["video"]["width"], header["video"]["height"] = 240, 120
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(header) + "\n")
    result = CliRunner().invoke(
        _app(),
        [
            "bench",
            "score",
            "--pred",
            str(bad),
            "--gt",
            str(scenario["gt"]),
            "--out",
            str(tmp_path / "y"),
            "--no-embed",
        ],
    )
    assert result.exit_code != 0 and "frame size" in str(result.exception)


def test_throughput_command_smoke(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "bench",
            "throughput",
            "--videos",
            "3",
            "--entities",
            "3",
            "--frames",
            "20",
            "--width",
            "64",
            "--height",
            "32",
            "--work",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scored 3 videos" in result.output
    results = [json.loads(line) for line in (tmp_path / "score" / "per_video.jsonl").read_text().splitlines()]
    # each synthetic video: one entity dropped (missed), one ghost (a false positive)
    assert all(r["false_positive_roles"] == ["related"] for r in results)
    assert all(not r["entities"][0]["matched"] for r in results)


def test_bench_run_runs_the_loop_and_scores(tmp_path: Path) -> None:
    from vigil360.bench.synthetic import write_clip

    data = tmp_path / "data"
    files = write_clip(ScenarioSpec(kind="stealing", seed=2, **SMALL), data)
    args = [
        "bench",
        "run",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--no-embed",
        "--max-frames",
        "20",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    prediction = tmp_path / "out" / "predictions" / f"{files.video.stem}.jsonl"
    assert prediction.exists()
    results = json.loads((tmp_path / "out" / "score" / "results.json").read_text())
    assert results["overall"]["videos"] == 1 and results["warnings"]["gt_without_prediction"] == 0
    stamp = prediction.stat().st_mtime_ns
    assert CliRunner().invoke(_app(), args).exit_code == 0
    assert prediction.stat().st_mtime_ns == stamp  # a finished video is not run again
