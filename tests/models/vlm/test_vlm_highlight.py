"""Object-highlighted clips: dimming, contour, centred crops, and the debug images a person can look at."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vigil360.errors import UserError
from vigil360.models.vlm.highlight import (
    CONTOUR_RGB,
    crop_box,
    crop_padded,
    highlight_frame,
    highlighted_clip,
    write_debug_images,
)


def _scene(height=120, width=160, box=(60, 30, 100, 90)):
    image = np.full((height, width, 3), 200, np.uint8)
    mask = np.zeros((height, width), bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    return image, mask


def test_highlight_dims_outside_keeps_inside_and_draws_the_contour():
    image, mask = _scene()
    lit = highlight_frame(image, mask, dim=0.25, thickness=1)
    assert (lit[5, 5] == 50).all()  # 200 * 0.25 far from the instance
    assert (lit[60, 80] == 200).all()  # the instance's interior is untouched
    assert tuple(lit[30, 80]) == CONTOUR_RGB  # its top edge carries the contour colour


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (np.zeros((10, 10), np.uint8), np.zeros((10, 10), bool), "RGB uint8"),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((9, 10), bool), "does not match"),
    ],
)
def test_highlight_refuses_bad_input(image, mask, message):
    with pytest.raises(UserError, match=message):
        highlight_frame(image, mask)


def test_crop_box_is_square_centred_and_grown():
    _, mask = _scene(box=(60, 30, 100, 90))  # 40 wide, 60 tall, centre (80, 60)
    x1, y1, x2, y2 = crop_box(mask, margin=0.5)
    assert (x2 - x1, y2 - y1) == (120, 120)
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == (80, 60)
    assert crop_box(np.zeros((5, 5), bool)) is None


def test_crop_padded_fills_outside_the_image():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    out = crop_padded(image, (-1, -1, 2, 2), fill=255)
    assert out.tolist() == [[255, 255, 255], [255, 0, 1], [255, 4, 5]]


def test_clip_skips_empty_frames_and_samples_evenly():
    frames, masks = [], []
    for index in range(10):
        image, mask = _scene(box=(10 + 5 * index, 30, 40 + 5 * index, 90))
        frames.append(image)
        masks.append(mask if index != 3 else np.zeros_like(mask))
    clip = highlighted_clip(frames, masks, size=48, max_frames=4)
    assert len(clip) == 4 and all(c.shape == (48, 48, 3) and c.dtype == np.uint8 for c in clip)
    # each crop is centred on the instance: its centre pixel is undimmed
    assert all((c[24, 24] == 200).all() for c in clip)


def test_clip_of_an_instance_that_is_never_visible_is_an_error():
    image, mask = _scene()
    with pytest.raises(UserError, match="empty in every frame"):
        highlighted_clip([image], [np.zeros_like(mask)])
    with pytest.raises(UserError, match="2 frames but 1 masks"):
        highlighted_clip([image, image], [mask])


def test_debug_images_round_trip(tmp_path):
    image, mask = _scene()
    lit = highlight_frame(image, mask)
    paths = write_debug_images([lit, lit], tmp_path / "debug", "caption_0001")
    assert [p.name for p in paths] == ["caption_0001_00.png", "caption_0001_01.png"]
    back = cv2.cvtColor(cv2.imread(str(paths[0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, lit)
