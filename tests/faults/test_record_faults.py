"""Bad record files: refused with file, line and JSON path; a torn last line salvaged (or refused with --strict)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil360 import masks
from vigil360.records import RecordError, RecordWarning, iter_records, write_jsonl, write_video_json
from vigil360.schema import AngleBox, Entity, Video, VideoRecord


def _record() -> VideoRecord:
    mask = np.zeros((24, 48), bool)
    mask[5:15, 10:20] = True
    entity = Entity(entity_id="e1", role="perpetrator", score=0.8, masks={3: masks.encode(mask)},
                    boxes={3: AngleBox(yaw=-100.0, pitch=0.0, width=20.0, height=30.0)})
    return VideoRecord(kind="prediction", system="s", entities=[entity],
                       video=Video(video_id="v", fps=30.0, width=48, height=24, num_frames=300))


def _lines(tmp_path) -> tuple[object, list[dict]]:
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [_record()])
    return path, [json.loads(line) for line in path.read_text().splitlines()]


def _write(path, lines: list[dict | str]) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


@pytest.mark.parametrize(("line", "mutate", "message"), [
    (1, lambda d: d["entity"].update(score=float("nan")), r"p.jsonl:2: entity.score: not a number \(NaN\)"),
    (0, lambda d: d["video"].update(fps="1e400"), r"p.jsonl:1: video.fps: infinite"),
    (2, lambda d: d["box"].update(yaw=float("nan")), r"p.jsonl:3: box.yaw: not a number \(NaN\)"),
    (2, lambda d: d.update(frame=99999), r"p.jsonl:3: frame: 99999 is beyond the video's last frame 299"),
    (2, lambda d: d["rle"].update(counts=d["rle"]["counts"][:-1] + "3"), r"p.jsonl:3: rle: .*runs cover"),
    (2, lambda d: d["rle"].update(counts="\x7f\x7f"), r"p.jsonl:3: rle: .*not a compressed COCO RLE"),
])
def test_bad_values_are_refused_with_file_line_and_path(tmp_path, line, mutate, message):
    path, lines = _lines(tmp_path)
    mutate(lines[line])
    text = [json.dumps(d, allow_nan=True).replace('"1e400"', "1e400") for d in lines]
    _write(path, text)
    with pytest.raises(RecordError, match=message):
        list(iter_records(path))


def test_a_box_beyond_the_video_in_a_json_record_is_refused(tmp_path):
    data = json.loads(_record().model_dump_json())
    data["entities"][0]["boxes"]["99999"] = {"yaw": 0.0, "pitch": 0.0, "width": 1.0, "height": 1.0}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"entities\[0\].boxes.99999: frame outside the video"):
        list(iter_records(path))


def test_a_torn_last_line_is_salvaged_with_a_warning_or_refused_when_strict(tmp_path):
    path, _ = _lines(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"record": "mask", "video_id": "v", "enti')
    with pytest.warns(RecordWarning, match=r"p.jsonl:4: torn last line skipped"):
        (record,) = iter_records(path)
    assert record.entities[0].masks == _record().entities[0].masks
    with pytest.raises(RecordError, match="p.jsonl:4: torn last line"):
        list(iter_records(path, strict=True))


def test_the_bench_index_salvages_or_refuses_the_same_way(tmp_path):
    from vigil360.bench.scoring.index import RecordIndex

    path, _ = _lines(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"record": "vid')
    with pytest.warns(RecordWarning):
        assert RecordIndex(path, "prediction").load("v").entities[0].entity_id == "e1"
    with pytest.raises(RecordError, match="torn last line"):
        RecordIndex(path, "prediction", strict=True)


def test_truth_as_predictions_points_to_the_documented_self_check(tmp_path):
    from vigil360.bench.scoring.index import RecordIndex

    truth = _record().model_copy(update={"kind": "ground_truth"})
    write_video_json(tmp_path / "gt.json", truth)
    with pytest.raises(RecordError, match="docs/schema.md"):
        RecordIndex(tmp_path / "gt.json", "prediction").load("v")
    # The documented recipe: relabel a copy as a prediction.
    relabelled = [r.model_copy(update={"kind": "prediction", "system": "truth"})
                  for r in iter_records(tmp_path / "gt.json")]
    write_jsonl(tmp_path / "self.jsonl", relabelled)
    assert RecordIndex(tmp_path / "self.jsonl", "prediction").load("v").entities == truth.entities
