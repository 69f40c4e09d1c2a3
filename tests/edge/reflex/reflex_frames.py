"""Tiny synthetic equirectangular frames for the reflex tests (the scenario generator covers
whole scenes; these isolate one effect each)."""

from __future__ import annotations

import cv2
import numpy as np

WIDTH, HEIGHT = 480, 240


def textured_background(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Smooth random texture with some sharp-edged blocks: enough structure to register turns."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(height // 4, 3 * height // 4))
        w, h = int(rng.integers(4, 20)), int(rng.integers(4, 20))
        image[y : y + h, x : x + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image


def paint_block(
    frame: np.ndarray,
    x_centre: float,
    y_top: int,
    y_bottom: int,
    half_width: int,
    colour: tuple[int, int, int],
) -> None:
    """Paint a solid block whose columns wrap around the seam."""
    width = frame.shape[1]
    columns = np.arange(int(round(x_centre)) - half_width, int(round(x_centre)) + half_width + 1) % width
    frame[y_top:y_bottom, columns] = colour
