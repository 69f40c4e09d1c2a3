"""Schema and record I/O: round trips, streaming JSON Lines, and errors that name file/line/path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil360 import masks
from vigil360.records import (
    JsonlWriter,
    RecordError,
    RecordWarning,
    iter_records,
    read_video_json,
    write_jsonl,
    write_video_json,
)
from vigil360.schema import (
    AngleBox,
    AnomalyInterval,
    Caption,
    Entity,
    EntityInfo,
    EntityLine,
    MaskLine,
    Video,
    VideoLine,
    VideoRecord,
    normalise_class,
)


def _record(video_id: str = "Stealing_Cafe_001", h: int = 24, w: int = 48) -> VideoRecord:
    mask = np.zeros((h, w), bool)
    mask[5:10, 40:48] = True
    mask[5:10, 0:3] = True  # across the seam
    return VideoRecord(
        kind="ground_truth",
        video=Video(video_id=video_id, fps=30, width=w, height=h, num_frames=10,
                    intervals=[AnomalyInterval(start_frame=2, end_frame=8, anomaly_class="Glancing",
                                               direction="left_back")]),
        entities=[Entity(entity_id="actor0", role="perpetrator",
                         caption=Caption(appearance="red top", motion="reaches"),
                         masks={3: masks.encode(mask), 4: masks.encode(mask)},
                         boxes={3: AngleBox(yaw=-179, pitch=0, width=20, height=10)})],
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("Glancing", "Glance"), ("glance", "Glance"), ("STEALING", "Stealing"), ("Traffic", "Traffic")],
)
def test_class_names_are_normalised(raw, canonical):
    assert normalise_class(raw) == canonical


def test_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="unknown anomaly class 'Dancing'"):
        normalise_class("Dancing")


def test_json_round_trip(tmp_path):
    record = _record()
    write_video_json(tmp_path / "v.json", record)
    back = read_video_json(tmp_path / "v.json")
    assert back == record
    assert back.video.intervals[0].anomaly_class == "Glance"
    assert masks.area(back.entities[0].masks[3]) == 5 * 11


def test_jsonl_round_trip_of_several_videos(tmp_path):
    records = [_record("a"), _record("b")]
    write_jsonl(tmp_path / "p.jsonl", records)
    assert list(iter_records(tmp_path / "p.jsonl")) == records


def test_streamed_lines_fold_with_later_caption_update(tmp_path):
    path = tmp_path / "stream.jsonl"
    rle = masks.encode(np.ones((4, 8), bool))
    with JsonlWriter(path) as writer:
        writer.write(VideoLine(kind="prediction", system="vigil360",
                               video=Video(video_id="v", fps=30, width=8, height=4)))
        writer.write(EntityLine(video_id="v", entity=EntityInfo(entity_id="e1", role="perpetrator")))
        writer.write(MaskLine(video_id="v", entity_id="e1", frame=0, rle=rle))
        writer.write(EntityLine(video_id="v", entity=EntityInfo(entity_id="e1", role="perpetrator",
                                                              caption=Caption(appearance="blue top"))))
    (record,) = iter_records(path)
    assert record.system == "vigil360"
    assert record.entities[0].caption == Caption(appearance="blue top")
    assert list(record.entities[0].masks) == [0]


def test_truncated_stream_keeps_complete_lines(tmp_path):
    path = tmp_path / "crash.jsonl"
    write_jsonl(path, [_record()])
    text = path.read_text()
    path.write_text(text + '{"record": "mask", "video_id": "Stea')  # a crash mid-line
    with pytest.warns(RecordWarning, match=r"crash.jsonl:\d+: torn last line skipped"):
        (record,) = iter_records(path)
    assert record == _record(), "everything before the torn line is read"
    with pytest.raises(RecordError, match=r"crash.jsonl:\d+: torn last line"):
        list(iter_records(path, strict=True))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["video"].update(fps=-1), r"video\.fps"),
        (lambda d: d["entities"][0].update(role="thief"), r"entities\[0\]\.role"),
        (lambda d: d["entities"][0].update(colour="red"), r"entities\[0\]\.colour.*Extra inputs"),
        (lambda d: d["entities"].append(dict(d["entities"][0])), "duplicate entity_id 'actor0'"),
        (lambda d: d["video"].update(width=50), r"mask size \[24, 48\] does not match"),
        (lambda d: d["video"].update(num_frames=4), "frame outside the video"),
    ],
)
def test_invalid_records_name_the_file_and_json_path(tmp_path, mutate, message):
    data = json.loads(_record().model_dump_json())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=message) as info:
        read_video_json(path)
    assert str(path) in str(info.value)


def test_jsonl_error_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [_record()])
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"perpetrator"', '"villain"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"p\.jsonl:2: entity\.role"):
        list(iter_records(path))


def test_non_contiguous_video_is_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [_record("a"), _record("b")])
    first = path.read_text().splitlines()[0]
    path.write_text(path.read_text() + first + "\n")
    with pytest.raises(RecordError, match="video 'a' appears twice"):
        list(iter_records(path))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_video_json(tmp_path / "x.json", _record())
    write_video_json(tmp_path / "x.json", _record())
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_mask_iou_matches_hand_computation():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:5] = True  # 20 px
    b[2:6, 0:5] = True  # 20 px, overlap 10
    assert masks.iou(masks.encode(a), masks.encode(b)) == pytest.approx(10 / 30)
    assert np.array_equal(masks.decode(masks.encode(a)), a)


def _alert_record() -> VideoRecord:
    from vigil360.schema import Alert

    record = _record()
    box = AngleBox(yaw=-170.0, pitch=-4.0, width=9.0, height=25.0)
    record.alerts = [
        Alert(entity_id="actor0", frame=3, sentence="7 o'clock, person in red coming.", box=box, distance_m=5.0,
              risk=0.6, direction="7 o'clock", time_to_contact_s=2.5),
        Alert(entity_id="actor0", frame=8, sentence="6 o'clock person!", urgent=True, box=box, distance_m=1.9),
    ]
    return record


def test_alert_lines_round_trip_in_json_and_jsonl(tmp_path):
    record = _alert_record()
    write_jsonl(tmp_path / "a.jsonl", [record])
    write_video_json(tmp_path / "a.json", record)
    assert '"record":"alert"' in (tmp_path / "a.jsonl").read_text()
    for name in ("a.jsonl", "a.json"):
        (back,) = iter_records(tmp_path / name)
        assert back.alerts == record.alerts and back.schema_version == "1.1"


def test_schema_1_0_files_are_still_read(tmp_path):
    """A file written before alert lines existed (schema 1.0, no alerts) reads as before."""
    record = _record()
    lines = [json.loads(line) for line in _jsonl_text(record).splitlines()]
    lines[0]["schema_version"] = "1.0"
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    document = json.loads(record.model_dump_json(exclude_none=True))
    document["schema_version"] = "1.0"
    del document["alerts"]
    (tmp_path / "old.json").write_text(json.dumps(document))
    for name in ("old.jsonl", "old.json"):
        (back,) = iter_records(tmp_path / name)
        assert back.schema_version == "1.0" and back.alerts == [] and back.entities == record.entities


def test_unknown_schema_version_is_refused_with_its_name(tmp_path):
    document = json.loads(_record().model_dump_json(exclude_none=True))
    document["schema_version"] = "2.0"
    (tmp_path / "new.json").write_text(json.dumps(document))
    with pytest.raises(RecordError, match="2.0"):
        list(iter_records(tmp_path / "new.json"))


def test_alert_before_its_entity_is_refused(tmp_path):
    record = _alert_record()
    lines = _jsonl_text(record).splitlines()
    alert_line = next(line for line in lines if '"record":"alert"' in line)
    reordered = [lines[0], alert_line] + [line for line in lines[1:] if line != alert_line]
    (tmp_path / "bad.jsonl").write_text("\n".join(reordered) + "\n")
    with pytest.raises(RecordError, match="bad.jsonl:2: alert for entity 'actor0' before its entity line"):
        list(iter_records(tmp_path / "bad.jsonl"))


def _jsonl_text(record: VideoRecord) -> str:
    from vigil360.records import record_to_lines

    return "".join(line.model_dump_json(exclude_none=True) + "\n" for line in record_to_lines(record))
