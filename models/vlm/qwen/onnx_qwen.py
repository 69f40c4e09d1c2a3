"""ONNX Runtime backend for Qwen2.5-VL / Qwen3-VL exports (`vigil360 export vlm` on a Qwen folder).

Around the graphs the host does what the models' forward passes do: build the prompt and patches
(`QwenPreprocessor`), compute every grid-dependent index in numpy, run the vision graph once per
image (attention cost grows with the square of the patches, so images are not packed together),
place the features at the <|image_pad|> positions, compute the 3D (M-RoPE) positions, and decode
greedily with the key/value cache (prefill feeds a one-slot past that the mask hides, as the
Idefics3 path does). Streaming, budgets and timing are the generic ONNX backend's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vigil360.errors import UserError
from vigil360.models.runtime import ProviderChoice, create_session, run_options
from vigil360.models.vlm.backends.common import DecodeClock
from vigil360.models.vlm.backends.onnx_backend import OnnxBackend, load_checked_manifest
from vigil360.models.vlm.qwen.grounding import QwenGrounding, processor_resize
from vigil360.models.vlm.qwen.inputs import (
    QwenInputs,
    QwenPreprocessor,
    image_segments,
    mrope_positions,
    position_interpolation,
    vision_positions,
    window_layout,
)

_REQUIRED = {"family", "image_token_id", "eos_token_ids", "kv_heads", "head_dim", "hidden_size", "merge_size",
             "patch_size"}


def vision_inputs(config: dict, pixel_values: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
    """The vision graph's inputs for these images (what the tower derives from `image_grid_thw`)."""
    merge = config["merge_size"]
    positions = vision_positions(grid, merge)
    images = image_segments(grid)
    if config["family"] == "qwen2_5_vl":
        order, window_ids = window_layout(grid, merge, config["window_size"], config["patch_size"])
        # Full-attention layers see the patches in window order too: carry each patch's image along.
        image_ids = images.reshape(-1, merge * merge)[order].reshape(-1)
        return {"pixel_values": pixel_values, "positions": positions, "window_order": order,
                "window_inverse": np.argsort(order).astype(np.int64), "window_ids": window_ids, "image_ids": image_ids}
    indices, weights = position_interpolation(grid, config["position_grid_side"], merge)
    return {"pixel_values": pixel_values, "positions": positions, "interp_indices": indices,
            "interp_weights": weights, "image_ids": images}


class QwenOnnxBackend(OnnxBackend):
    name = "onnx"

    def __init__(self, export_dir: str | Path, providers: ProviderChoice = "auto", threads: int | None = None,
                 verify: bool = True, trt_cache_dir: str | Path | None = None):
        folder = Path(export_dir)
        self.manifest = load_checked_manifest(folder, verify)
        self.config = self.manifest.config
        missing = _REQUIRED - set(self.config)
        if missing:
            raise UserError(f"{folder}: manifest config lacks {sorted(missing)} (re-run `vigil360 export vlm`)")
        self.vision = create_session(folder / self.manifest.file("vision").path, providers, threads, trt_cache_dir)
        self.decoder = create_session(folder / self.manifest.file("decoder").path, providers, threads, trt_cache_dir)
        self.embed = np.load(folder / self.manifest.file("embed_tokens").path, mmap_mode="r")
        self.preprocessor = QwenPreprocessor(folder)
        self.tokenizer = self.preprocessor.tokenizer
        self.grounding = QwenGrounding(self.config["family"], processor_resize(self.preprocessor.images))
        self.float_type = np.float32
        self.eos = set(self.config["eos_token_ids"])
        self._past_names = [n.name for n in self.decoder.get_inputs() if n.name.startswith("past.")]
        self._deepstack = any(n.name == "deepstack" for n in self.decoder.get_inputs())

    def prepare(self, request) -> QwenInputs:
        return self.preprocessor.prepare(request)

    def encode_images(self, inputs: QwenInputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Merged features [tokens, hidden] of all images in prompt order, and deepstack [taps, tokens, hidden]."""
        features, deepstack, start = [], [], 0
        for grid in inputs.image_grid_thw:
            count = int(grid.prod())
            feeds = vision_inputs(self.config, inputs.pixel_values[start:start + count], grid[None])
            outputs = self.vision.run(None, feeds, run_options())
            features.append(outputs[0])
            if len(outputs) > 1:
                deepstack.append(outputs[1])
            start += count
        return np.concatenate(features), (np.concatenate(deepstack, axis=1) if deepstack else None)

    def prefill_feeds(self, inputs: QwenInputs, clock: DecodeClock | None = None) -> tuple[dict, int]:
        """The decoder's prompt feeds (image features merged, M-RoPE positions) and the next position."""
        features, deepstack = self.encode_images(inputs)
        if clock is not None:
            clock.vision()
        ids = inputs.input_ids
        slots = np.flatnonzero(ids[0] == self.config["image_token_id"])
        if slots.size != features.shape[0]:
            raise UserError(f"prompt has {slots.size} image tokens but the vision graph gave {features.shape[0]}")
        embeds = np.asarray(self.embed[ids[0]], dtype=np.float32)
        embeds[slots] = features
        positions, next_position = mrope_positions(ids, inputs.image_grid_thw, self.config["image_token_id"],
                                                   self.config["merge_size"])
        feeds = {"inputs_embeds": embeds[None], "position_ids": positions[:, None, :],
                 "attention_mask": np.concatenate([np.zeros((1, 1), np.int64), np.ones((1, ids.shape[1]), np.int64)],
                                                  axis=1)}
        feeds.update({name: np.zeros((1, self.config["kv_heads"], 1, self.config["head_dim"]), np.float32)
                      for name in self._past_names})
        if self._deepstack:
            # Deepstack features are added at the image positions only: zeros elsewhere add nothing.
            dense = np.zeros((deepstack.shape[0], 1, ids.shape[1], embeds.shape[-1]), np.float32)
            dense[:, 0, slots] = deepstack
            feeds["deepstack"] = dense
        return feeds, next_position

    def prefill_logits(self, inputs: QwenInputs) -> np.ndarray:
        """Logits of the first decoding step (the export's parity check compares them with torch)."""
        return self.decoder.run(["logits"], self.prefill_feeds(inputs)[0])[0][0]

    def decode_steps(self, inputs: QwenInputs, max_new_tokens: int, clock: DecodeClock | None = None,
                     ignore_eos: bool = False) -> Iterator[int]:
        """Greedy token ids, one at a time, ending at EOS (yielded) or the token budget."""
        feeds, next_position = self.prefill_feeds(inputs, clock)
        for _ in range(max_new_tokens):
            outputs = self.decoder.run(None, feeds, run_options())  # stoppable at the end of a run
            token = int(np.argmax(outputs[0][0]))
            if clock is not None:
                clock.token()
            yield token
            if token in self.eos and not ignore_eos:
                return
            feeds.update(zip(self._past_names, outputs[1:], strict=True))
            feeds["inputs_embeds"] = np.asarray(self.embed[[token]], dtype=np.float32)[None]
            feeds["position_ids"] = np.full((3, 1, 1), next_position, np.int64)
            next_position += 1
            feeds["attention_mask"] = np.concatenate([feeds["attention_mask"], np.ones((1, 1), np.int64)], axis=1)
            if self._deepstack:
                feeds["deepstack"] = np.zeros((feeds["deepstack"].shape[0], 1, 1, feeds["inputs_embeds"].shape[-1]),
                                              np.float32)
