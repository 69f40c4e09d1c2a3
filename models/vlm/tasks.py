"""Grounder and Captioner over any VlmBackend: prompt -> generate -> strict parse.

A backend failure (a server that is down, a model that cannot run) raises; a model that
answers nonsense gives a result with `ok` false and the reasons - the loop decides what to do.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from vigil360.models.vlm.highlight import write_debug_images
from vigil360.models.vlm.interfaces import (
    CaptionResult,
    Generation,
    GroundingResult,
    VlmBackend,
    check_images,
)
from vigil360.models.vlm.parsing import parse_caption, parse_grounding
from vigil360.models.vlm.prompts import BOX_SCALE, caption_request, grounding_request


class _DebugImages:
    """Writes every image set sent to the model, numbered, when a debug folder is set."""

    def __init__(self, folder: str | Path | None, kind: str):
        self.folder = Path(folder) if folder else None
        self.kind = kind
        self._count = itertools.count()

    def write(self, images: list[np.ndarray]) -> None:
        if self.folder is not None:
            write_debug_images(images, self.folder, f"{self.kind}_{next(self._count):04d}")


class VlmGrounder:
    def __init__(self, backend: VlmBackend, max_new_tokens: int = 160, debug_dir: str | Path | None = None):
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.last_generation: Generation | None = None
        self._debug = _DebugImages(debug_dir, "grounding")

    def ground(self, views: list[np.ndarray], context: str) -> GroundingResult:
        check_images(views, "views")
        sizes = [(v.shape[1], v.shape[0]) for v in views]
        # A backend of a family with its own trained grounding form (Qwen-VL) brings its prompt and
        # box coordinate frame; others get the generic JSON prompt with boxes in 0..BOX_SCALE.
        convention = getattr(self.backend, "grounding", None)
        if convention is not None:
            request, frames = convention.request(len(views), context, self.max_new_tokens), convention.box_frames(sizes)
        else:
            request, frames = grounding_request(len(views), context, self.max_new_tokens), None
        request = dataclasses.replace(request, images=views)
        self._debug.write(views)
        generation = self.backend.generate(request)
        self.last_generation = generation
        result = parse_grounding(generation.text, sizes, scale=BOX_SCALE, box_frames=frames)
        if generation.stop == "budget":
            result.repairs.append(f"hit the token budget ({self.max_new_tokens} tokens)")
        return result


class VlmCaptioner:
    def __init__(self, backend: VlmBackend, max_new_tokens: int = 96, debug_dir: str | Path | None = None):
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.last_generation: Generation | None = None
        self._debug = _DebugImages(debug_dir, "caption")

    def describe(self, clip: list[np.ndarray], context: str) -> CaptionResult:
        check_images(clip, "clip frames")
        request = dataclasses.replace(caption_request(context, self.max_new_tokens), images=clip)
        self._debug.write(clip)
        generation = self.backend.generate(request)
        self.last_generation = generation
        result = parse_caption(generation.text)
        if generation.stop == "budget":
            result.repairs.append(f"hit the token budget ({self.max_new_tokens} tokens)")
        return result
