"""The reference Qwen-VL backend: transformers' `generate` on inputs built by `QwenPreprocessor`.

Decoding, streaming and timing are the generic transformers backend's; only loading and input
preparation differ (the published processor class cannot be built here, see `inputs.py`).
"""

from __future__ import annotations

from pathlib import Path

from vigil360.errors import UserError
from vigil360.models.vlm.backends.common import require_model_dir
from vigil360.models.vlm.backends.transformers_backend import TransformersBackend
from vigil360.models.vlm.interfaces import VlmRequest
from vigil360.models.vlm.qwen.grounding import QwenGrounding, processor_resize
from vigil360.models.vlm.qwen.inputs import QwenInputs, QwenPreprocessor


class QwenTransformersBackend(TransformersBackend):
    name = "transformers"

    def __init__(self, model_dir: str | Path, threads: int | None = None, dtype: str = "float32"):
        import torch
        from transformers import AutoModelForImageTextToText

        folder = require_model_dir(model_dir)
        if threads is not None:
            torch.set_num_threads(threads)
        self.preprocessor = QwenPreprocessor(folder)
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
        except (OSError, ValueError, ImportError) as error:
            raise UserError(f"{folder}: transformers could not load this model folder: {error}") from None
        self.tokenizer = self.preprocessor.tokenizer
        self.model_dir = folder
        self.square_size = None
        self.grounding = QwenGrounding(self.preprocessor.family, processor_resize(self.preprocessor.images))
        self.last_inputs: QwenInputs | None = None

    def prepare(self, request: VlmRequest) -> dict:
        import torch

        inputs = self.preprocessor.prepare(request)
        self.last_inputs = inputs
        ids = torch.from_numpy(inputs.input_ids)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "pixel_values": torch.from_numpy(inputs.pixel_values),
                "image_grid_thw": torch.from_numpy(inputs.image_grid_thw),
                "mm_token_type_ids": (ids == self.preprocessor.image_token_id).to(torch.int32)}
