"""Qwen-VL box conventions: each family's reply mapped to view pixels, hand-checked rows."""

from __future__ import annotations

import pytest

from vigil360.models.vlm.parsing import parse_grounding
from vigil360.models.vlm.qwen.grounding import QwenGrounding


def qwen25_resize(width: int, height: int) -> tuple[int, int]:
    """Qwen2.5-VL's default smart_resize at patch 14 x merge 2 (multiples of 28), a pixel budget of 28*28*1280."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    new_height, new_width = smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    return new_width, new_height


ROWS = [
    # family, view (w, h), reply box, expected view-pixel box
    # 640x480 -> 644x476 (round(640/28)=23 -> 644, round(480/28)=17 -> 476): pixels scale by 640/644, 480/476.
    ("qwen2_5_vl", (640, 480), [161, 119, 322, 476], (160.0, 120.0, 320.0, 480.0)),
    # 1920x960 exceeds the pixel budget: resized to 1400x700 (beta = sqrt(1920*960 / 1003520) ~ 1.356).
    ("qwen2_5_vl", (1920, 960), [700, 350, 1400, 700], (960.0, 480.0, 1920.0, 960.0)),
    ("qwen3_vl", (640, 480), [250, 500, 500, 1000], (160.0, 240.0, 320.0, 480.0)),
    ("qwen3_vl", (1920, 960), [0, 0, 1000, 1000], (0.0, 0.0, 1920.0, 960.0)),
    # Outside the frame: clipped to the family's frame, then mapped.
    ("qwen3_vl", (100, 100), [-20, 10, 1200, 50], (0.0, 1.0, 100.0, 5.0)),
]


@pytest.mark.parametrize(("family", "view", "box", "expected"), ROWS)
def test_family_boxes_map_to_view_pixels(family, view, box, expected):
    grounding = QwenGrounding(family, qwen25_resize)
    reply = f'[{{"bbox_2d": {box}, "label": "person", "role": "victim"}}]'
    result = parse_grounding(reply, [view], box_frames=grounding.box_frames([view]))
    assert result.rejected == []
    assert result.entities[0].box_xyxy == pytest.approx(expected, abs=1e-9)


def test_resize_of_the_frame_table_is_what_the_rows_assume():
    assert qwen25_resize(640, 480) == (644, 476)
    assert qwen25_resize(1920, 960) == (1400, 700)


def test_prompt_is_the_familys_trained_form_and_names_the_coordinates():
    qwen25 = QwenGrounding("qwen2_5_vl", qwen25_resize).request(1, "a bag is grabbed")
    qwen3 = QwenGrounding("qwen3_vl", qwen25_resize).request(3, "a bag is grabbed")
    for request in (qwen25, qwen3):
        assert "output their bbox coordinates in JSON format" in request.user and '"bbox_2d"' in request.user
        assert '"role"' in request.user and "a bag is grabbed" in request.user
    assert "absolute pixel coordinates" in qwen25.user and '"view"' not in qwen25.user
    assert "0 to 1000" in qwen3.user and '"view"' in qwen3.user


def test_multi_view_frames_follow_each_view():
    grounding = QwenGrounding("qwen2_5_vl", qwen25_resize)
    views = [(640, 480), (1920, 960)]
    reply = ('[{"bbox_2d": [0, 0, 644, 476], "label": "bag", "role": "target", "view": 1},'
             ' {"bbox_2d": [0, 0, 1400, 700], "label": "person", "role": "perpetrator", "view": 2}]')
    result = parse_grounding(reply, views, box_frames=grounding.box_frames(views))
    assert [e.box_xyxy for e in result.entities] == [(0.0, 0.0, 640.0, 480.0), (0.0, 0.0, 1920.0, 960.0)]


def test_unknown_family_and_mismatched_frames_are_refused():
    with pytest.raises(ValueError, match="no Qwen grounding convention"):
        QwenGrounding("idefics3", qwen25_resize)
    with pytest.raises(ValueError, match="box frames for"):
        parse_grounding("[]", [(10, 10)], box_frames=[(1, 1), (2, 2)])
