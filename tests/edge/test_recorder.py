"""Predictions JSON Lines: folded back into a valid record, and intact when the writer dies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil360 import masks
from vigil360.edge.recorder import PredictionRecorder
from vigil360.records import iter_records
from vigil360.schema import AngleBox, Caption, Video


def _video() -> Video:
    return Video(video_id="clip", fps=15.0, width=64, height=32, num_frames=10)


def test_recorded_lines_fold_into_a_prediction_record(tmp_path):
    recorder = PredictionRecorder(tmp_path / "p.jsonl", _video())
    recorder.entity(
        "e1",
        "perpetrator",
        label="person",
        caption=Caption(appearance="red top", motion="running"),
        sentence="Person in a red top running, 6 o'clock.",
        score=0.7,
        first_alert_frame=3,
    )
    mask = np.zeros((32, 64), bool)
    mask[10:20, 60:64] = mask[10:20, 0:3] = True  # across the seam
    recorder.mask(
        "e1", 3, rle=masks.encode(mask), box=AngleBox(yaw=-178.0, pitch=0.0, width=40.0, height=50.0)
    )
    recorder.entity(
        "e1", "perpetrator", caption=Caption(appearance="red hoodie", motion="reaching for the bag")
    )
    recorder.close()
    (record,) = iter_records(tmp_path / "p.jsonl")
    assert record.kind == "prediction" and record.system == "vigil360"
    (entity,) = record.entities
    assert entity.first_alert_frame == 3 and entity.sentence.startswith("Person in a red top")
    assert entity.caption.appearance == "red hoodie", "a later entity line refines the caption"
    assert entity.score == pytest.approx(0.7), "fields not re-sent are kept"
    assert np.array_equal(masks.decode(entity.masks[3]), mask)


def test_lines_already_written_survive_an_abandoned_writer(tmp_path):
    path = tmp_path / "p.jsonl"
    recorder = PredictionRecorder(path, _video())
    recorder.entity("e1", "perpetrator", first_alert_frame=1)
    recorder.mask("e1", 1, box=AngleBox(yaw=10.0, pitch=0.0, width=5.0, height=5.0))
    # No close(): every line was flushed as it was written.
    (record,) = iter_records(path)
    assert [e.entity_id for e in record.entities] == ["e1"] and list(record.entities[0].boxes) == [1]
    recorder.close()


def test_a_new_run_replaces_the_old_file_and_bad_masks_are_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    PredictionRecorder(path, _video()).close()
    recorder = PredictionRecorder(path, _video())
    with pytest.raises(ValueError, match="before its entity line"):
        recorder.mask("e9", 0)
    recorder.entity("e1", "victim")
    with pytest.raises(ValueError, match="not the video's"):
        recorder.mask("e1", 0, rle=masks.empty(16, 32))
    recorder.close()
    assert len(list(iter_records(path))) == 1


@settings(max_examples=150, deadline=None)
@given(
    height=st.integers(1, 24), scale=st.integers(1, 4), seed=st.integers(0, 2**16), density=st.floats(0, 1)
)
def test_upsampled_rle_equals_encoding_the_resized_mask(height, scale, seed, density):
    mask = np.random.default_rng(seed).random((height, 2 * height)) < density
    width_full, height_full = 2 * height * scale, height * scale
    expected = masks.encode(
        cv2.resize(mask.astype(np.uint8), (width_full, height_full), interpolation=cv2.INTER_NEAREST)
    )
    assert masks.upsampled(mask, width_full, height_full) == expected


@pytest.mark.parametrize("size", [(64, 32), (100, 50)])  # integer scale, and not (falls back)
def test_upsampled_rle_of_a_seam_crossing_mask(size):
    mask = np.zeros((16, 32), bool)
    mask[5:9, 30:] = mask[5:9, :3] = True
    rle = masks.upsampled(mask, *size)
    assert tuple(rle.size) == (size[1], size[0])
    full = masks.decode(rle)
    assert full[:, 0].any() and full[:, -1].any(), "both sides of the seam"


def test_every_alert_is_a_line_with_its_box_even_without_a_mask(tmp_path):
    from vigil360.schema import Alert

    recorder = PredictionRecorder(tmp_path / "p.jsonl", _video())
    recorder.entity("e1", "perpetrator", label="person", sentence="5 o'clock, person in red coming.",
                    first_alert_frame=2)
    box2, box7 = AngleBox(yaw=150.0, pitch=-5.0, width=8.0, height=20.0), AngleBox(yaw=160.0, pitch=-6.0,
                                                                                   width=12.0, height=30.0)
    recorder.alert(Alert(entity_id="e1", frame=2, sentence="5 o'clock, person in red coming.", box=box2,
                         distance_m=4.0, risk=0.6, direction="5 o'clock", time_to_contact_s=2.1))
    recorder.alert(Alert(entity_id="e1", frame=7, sentence="6 o'clock person!", urgent=True, box=box7,
                         distance_m=1.6, risk=0.9, direction="6 o'clock", time_to_contact_s=0.1))
    with pytest.raises(ValueError, match="before its entity line"):
        recorder.alert(Alert(entity_id="e9", frame=7, sentence="x", box=box7))
    recorder.close()
    (record,) = iter_records(tmp_path / "p.jsonl")
    assert record.schema_version == "1.1"
    assert [(a.frame, a.urgent, a.sentence) for a in record.alerts] == [
        (2, False, "5 o'clock, person in red coming."), (7, True, "6 o'clock person!")]
    assert record.alerts[1].distance_m == pytest.approx(1.6) and record.alerts[1].box == box7
    (entity,) = record.entities
    assert entity.boxes == {2: box2, 7: box7} and entity.masks == {}, "the alert's box, no mask"
