"""Tiny random-weights VLM folders for tests (built once per session; outputs are gibberish)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil360.models.vlm.random_init import ARCHITECTURES, write_random_vlm

TINY = "idefics3-tiny"
TINY_IMAGE_SIZE = ARCHITECTURES[TINY].image_size


def tiny_model_dir(root: Path) -> Path:
    return write_random_vlm(root / TINY, TINY, seed=0)


def views(count: int, size: int = TINY_IMAGE_SIZE, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]
