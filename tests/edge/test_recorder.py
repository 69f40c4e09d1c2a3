"""Predictions JSON Lines: folded back into a valid record, and intact when the writer dies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil360 import masks
from vigil360.edge.recorder import PredictionRecorder, upsampled_rle
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
    assert upsampled_rle(mask, width_full, height_full) == expected


@pytest.mark.parametrize("size", [(64, 32), (100, 50)])  # integer scale, and not (falls back)
def test_upsampled_rle_of_a_seam_crossing_mask(size):
    mask = np.zeros((16, 32), bool)
    mask[5:9, 30:] = mask[5:9, :3] = True
    rle = upsampled_rle(mask, *size)
    assert tuple(rle.size) == (size[1], size[0])
    full = masks.decode(rle)
    assert full[:, 0].any() and full[:, -1].any(), "both sides of the seam"
