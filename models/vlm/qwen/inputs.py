"""Qwen-VL model inputs on the host, in numpy: prompt ids, patches, and every grid-dependent index.

What the published processor and the models' forward passes compute from `image_grid_thw` is
computed here instead, so the exported graphs take it as inputs and never see the grid:
- patch-level rotary positions (h, w) in merge-block order (`vision_positions`);
- Qwen2.5-VL's window layout: the order that groups patches by window and the window each
  patch falls in (`window_layout`); full-attention layers use the image each patch belongs to;
- Qwen3-VL's bilinear resampling of its learned position grid (`position_interpolation`);
- the text decoder's 3D (M-RoPE) position ids (`mrope_positions`).
Each mirrors the transformers function named in its docstring; tests compare them on several grids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil360.errors import UserError
from vigil360.models.vlm.backends.common import require_model_dir
from vigil360.models.vlm.interfaces import VlmRequest, check_images
from vigil360.models.vlm.prompts import chat_messages


@dataclass
class QwenInputs:
    input_ids: np.ndarray  # [1, seq] int64, each image's <|image_pad|> expanded to its token count
    pixel_values: np.ndarray  # [patches, 3 * temporal * patch * patch] float32, merge-block order
    image_grid_thw: np.ndarray  # [images, 3] int64, in patches
    model_sizes: list[tuple[int, int]]  # (width, height) of each image as resized for the model


class QwenPreprocessor:
    """Chat text, image resizing/patching and image-token expansion without the video-bound processor."""

    def __init__(self, folder: str | Path):
        from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

        folder = require_model_dir(folder)
        config = json.loads((folder / "config.json").read_text())
        self.family = config["model_type"]
        self.image_token_id = int(config["image_token_id"])
        self.merge_size = int(config["vision_config"].get("spatial_merge_size", 2))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.images = Qwen2VLImageProcessorPil.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise UserError(f"{folder}: cannot load the Qwen-VL tokenizer/image processor: {error}") from None
        if self.tokenizer.chat_template is None:
            raise UserError(f"{folder}: the tokenizer has no chat template (chat_template.jinja missing?)")

    def prepare(self, request: VlmRequest) -> QwenInputs:
        check_images(request.images, "images")
        processed = self.images(images=list(request.images), return_tensors="np")
        grid = np.asarray(processed["image_grid_thw"], dtype=np.int64)
        patch = self.images.patch_size
        messages = chat_messages(request, [{"type": "image"} for _ in request.images])
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pad = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        pieces = text.split(pad)
        if len(pieces) != len(grid) + 1:
            raise UserError(f"chat template gave {len(pieces) - 1} image slots for {len(grid)} images")
        counts = [int(g.prod()) // self.merge_size**2 for g in grid]
        expanded = pieces[0] + "".join(pad * n + rest for n, rest in zip(counts, pieces[1:], strict=True))
        ids = np.asarray([self.tokenizer(expanded, add_special_tokens=False)["input_ids"]], dtype=np.int64)
        return QwenInputs(input_ids=ids, pixel_values=np.asarray(processed["pixel_values"], dtype=np.float32),
                          image_grid_thw=grid, model_sizes=[(int(w) * patch, int(h) * patch) for _, h, w in grid])


def vision_positions(grid: np.ndarray, merge: int) -> np.ndarray:
    """[patches, 2] (row, col) per patch in merge-block order (transformers `get_vision_position_ids`)."""
    rows = []
    for t, h, w in grid.tolist():
        hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        shape = (h // merge, merge, w // merge, merge)
        block = np.stack([hh.reshape(shape).transpose(0, 2, 1, 3).ravel(),
                          ww.reshape(shape).transpose(0, 2, 1, 3).ravel()], axis=-1)
        rows.append(np.tile(block, (t, 1)))
    return np.concatenate(rows).astype(np.int64)


def image_segments(grid: np.ndarray) -> np.ndarray:
    """[patches] index of the image (frame) each patch belongs to: full attention stays within it."""
    sizes = [h * w for t, h, w in grid.tolist() for _ in range(t)]
    return np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)


def window_layout(grid: np.ndarray, merge: int, window_size: int, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Qwen2.5-VL windows (transformers `get_vision_window_index`): the merged-token order that
    groups windows together, and the window number of every patch in that order."""
    side = window_size // merge // patch_size
    order, windows, offset, window = [], [], 0, 0
    for t, h, w in grid.tolist():
        gh, gw = h // merge, w // merge
        index = np.arange(t * gh * gw).reshape(t, gh, gw)
        pad_h, pad_w = side - gh % side, side - gw % side
        padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-1)
        nh, nw = (gh + pad_h) // side, (gw + pad_w) // side
        padded = padded.reshape(t, nh, side, nw, side).transpose(0, 1, 3, 2, 4).reshape(t * nh * nw, side * side)
        for cell in padded:
            kept = cell[cell >= 0]
            if kept.size:
                order.append(kept + offset)
                windows.append(np.full(kept.size * merge * merge, window))
                window += 1
        offset += t * gh * gw
    return np.concatenate(order).astype(np.int64), np.concatenate(windows).astype(np.int64)


def position_interpolation(grid: np.ndarray, side: int, merge: int) -> tuple[np.ndarray, np.ndarray]:
    """Qwen3-VL: 4 bilinear taps (align_corners) into the side x side learned grid per patch, in
    merge-block order (transformers `get_vision_interpolation_indices_and_weights`)."""
    indices, weights = [], []
    for (row, col), (_, h, w) in _patch_coordinates(grid, merge):
        taps, tap_weights = [], []
        for coordinate, length in ((row, h), (col, w)):
            source = coordinate.astype(np.float32) * np.float32(side - 1) / np.float32(max(length - 1, 1))
            floor = np.floor(source)
            offsets = np.arange(2)
            taps.append(np.clip(floor.astype(np.int64)[:, None] + offsets, 0, side - 1))
            tap_weights.append(np.clip(1 - np.abs(source[:, None] - floor[:, None] - offsets), 0, None))
        indices.append((taps[0][:, :, None] * side + taps[1][:, None, :]).reshape(-1, 4))
        weights.append((tap_weights[0][:, :, None] * tap_weights[1][:, None, :]).reshape(-1, 4))
    return np.concatenate(indices).astype(np.int64), np.concatenate(weights).astype(np.float32)


def _patch_coordinates(grid: np.ndarray, merge: int):
    positions = vision_positions(grid, merge)
    start = 0
    for t, h, w in grid.tolist():
        count = t * h * w
        yield (positions[start:start + count, 0], positions[start:start + count, 1]), (t, h, w)
        start += count


def mrope_positions(input_ids: np.ndarray, grid: np.ndarray, image_token_id: int, merge: int) -> tuple[np.ndarray, int]:
    """[3, seq] (time, row, col) positions and the next text position (transformers `get_rope_index`).

    Text advances all three by one per token; an image's tokens share its start time and spread
    over rows and columns from the same start; the text after it resumes past the larger side.
    """
    ids = input_ids[0]
    is_image = ids == image_token_id
    columns, position, start, images = [], 0, 0, iter(grid.tolist())
    while start < ids.size:
        end = start
        while end < ids.size and is_image[end] == is_image[start]:
            end += 1
        if not is_image[start]:
            columns.append(np.broadcast_to(np.arange(position, position + end - start), (3, end - start)))
            position += end - start
        else:
            t, h, w = next(images)
            gh, gw = h // merge, w // merge
            tt, hh, ww = np.meshgrid(np.arange(t), np.arange(gh), np.arange(gw), indexing="ij")
            columns.append(np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + position)
            position += max(gh, gw)
        start = end
    positions = np.concatenate(columns, axis=1).astype(np.int64)
    return positions, int(positions.max()) + 1
