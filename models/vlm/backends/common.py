"""Pieces the local backends share: finding a model folder, timing a decode, stopping rules."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vigil360.errors import MissingModelError

FETCH_HINT = ("e.g. `huggingface-cli download HuggingFaceTB/SmolVLM-256M-Instruct --local-dir DIR` on a "
              "machine with internet, or `vigil360.models.vlm.random_init.write_random_vlm(DIR)` for a "
              "random-weights folder to test with")


def require_model_dir(model_dir: str | Path, needs: str = "config.json") -> Path:
    folder = Path(model_dir)
    if not (folder / needs).is_file():
        raise MissingModelError(f"{folder}: no {needs}; point the VLM at a local model folder ({FETCH_HINT})")
    return folder


@dataclass
class DecodeClock:
    """Wall-clock marks of one request: start, end of vision, first and last token."""

    start: float = field(default_factory=time.perf_counter)
    vision_done: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0

    def vision(self) -> None:
        self.vision_done = time.perf_counter()

    def token(self) -> None:
        self.last_token = time.perf_counter()
        if self.first_token is None:
            self.first_token = self.last_token
        self.tokens += 1

    def per_token_s(self) -> float | None:
        """Steady-state decode time: from the first token to the last, per token after the first."""
        if self.tokens < 2:
            return None
        return (self.last_token - self.first_token) / (self.tokens - 1)

    def seconds(self) -> dict[str, float | None]:
        now = time.perf_counter()
        return {
            "total_s": now - self.start,
            "first_token_s": None if self.first_token is None else self.first_token - self.start,
            "vision_s": None if self.vision_done is None else self.vision_done - self.start,
        }


def square_image(image: np.ndarray, size: int) -> np.ndarray:
    """A size x size copy for models with a fixed square input (Idefics3 / SmolVLM v1 tiles).

    Stretching, not letterboxing: boxes come back normalised to the image the model saw, so a
    stretch maps back to view pixels exactly, where padding would need its offsets undone.
    """
    if image.shape[:2] == (size, size):
        return image
    import cv2

    interpolation = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
