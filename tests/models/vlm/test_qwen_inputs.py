"""Host-side Qwen-VL indices (numpy) against the transformers functions they replace, on several grids."""

from __future__ import annotations

import numpy as np
import pytest

from vigil360.models.vlm.qwen.inputs import (
    image_segments,
    mrope_positions,
    position_interpolation,
    vision_positions,
    window_layout,
)

# (t, h, w) patch grids: square, wide, tall, not a multiple of the window, several images at once.
GRIDS = [[[1, 4, 4]], [[1, 8, 12]], [[1, 14, 6]], [[1, 10, 16], [1, 8, 6]], [[1, 2, 2], [1, 22, 4], [1, 6, 6]]]


@pytest.mark.parametrize("grid", GRIDS)
def test_patch_positions_match_transformers(grid):
    import torch
    from transformers.vision_utils import get_vision_position_ids

    expected = get_vision_position_ids(torch.tensor(grid), 2).numpy()
    np.testing.assert_array_equal(vision_positions(np.array(grid), 2), expected)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize(("window", "patch"), [(56, 14), (112, 14)])
def test_window_layout_matches_transformers(grid, window, patch):
    import torch
    from transformers.vision_utils import get_vision_window_index

    order, cu = get_vision_window_index(torch.tensor(grid), 2, window, patch)
    got_order, got_windows = window_layout(np.array(grid), 2, window, patch)
    np.testing.assert_array_equal(got_order, order.numpy())
    # transformers gives window boundaries; ours numbers every patch by its window.
    np.testing.assert_array_equal(np.flatnonzero(np.diff(got_windows)) + 1, cu.numpy()[1:-1])
    assert got_windows.size == cu[-1]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("side", [8, 48])
def test_position_interpolation_matches_transformers(grid, side):
    import torch
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights

    indices, weights = get_vision_interpolation_indices_and_weights(torch.tensor(grid), side, mode="bilinear",
                                                                    align_corners=True, spatial_merge_size=2)
    got_indices, got_weights = position_interpolation(np.array(grid), side, 2)
    np.testing.assert_array_equal(got_indices, indices.numpy())
    np.testing.assert_allclose(got_weights, weights.numpy(), atol=1e-6)


def test_image_segments_number_each_image():
    np.testing.assert_array_equal(image_segments(np.array([[1, 2, 2], [1, 2, 4]])), [0] * 4 + [1] * 8)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("grid", GRIDS[1:])
def test_mrope_positions_match_the_models_rope_index(family, grid, qwen_models):
    import torch

    model, image_token = qwen_models[family]
    merged = [t * h * w // 4 for t, h, w in grid]
    ids = [105, 106]  # ordinary text tokens, not special ones
    for count in merged:
        ids += [107] + [image_token] * count + [108, 109]
    ids += [110, 111, 112]
    input_ids = torch.tensor([ids])
    expected, delta = model.model.get_rope_index(input_ids, image_grid_thw=torch.tensor(grid),
                                                 mm_token_type_ids=(input_ids == image_token).int())
    positions, next_position = mrope_positions(input_ids.numpy(), np.array(grid), image_token, 2)
    np.testing.assert_array_equal(positions, expected[:, 0].numpy())
    assert next_position == len(ids) + int(delta)


@pytest.fixture(scope="module")
def qwen_models():
    """Tiny untrained models, for their `get_rope_index` (no weights involved)."""
    from vigil360.models.vlm.qwen.random_init import ARCHITECTURES, build_model, build_tokenizer

    models = {}
    for family in ("qwen2_5_vl", "qwen3_vl"):
        size = ARCHITECTURES[f"{family}-tiny"]
        tokenizer = build_tokenizer(size.tokenizer_vocab)
        models[family] = (build_model(size, tokenizer), tokenizer.convert_tokens_to_ids("<|image_pad|>"))
    return models
