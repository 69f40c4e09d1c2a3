"""Object-highlighted clips (as MaskCaptioner / VoCap do): the instance outlined, the rest dimmed.

Inputs are perspective-view images and view-space masks as numpy arrays; extracting views from
the 360-degree frame is the caller's job (edge/), since `models` never imports `edge`.
Each frame is cropped around the instance's box (grown by a margin, kept square, padded at the
image border) so a small, far entity still fills the model's input.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil360.errors import UserError

CONTOUR_RGB = (255, 40, 40)


def highlight_frame(image: np.ndarray, mask: np.ndarray, dim: float = 0.35, thickness: int = 2,
                    color: tuple[int, int, int] = CONTOUR_RGB) -> np.ndarray:
    """The image with pixels outside `mask` scaled by `dim` and the mask's contour drawn."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"highlight: expected an RGB uint8 HxWx3 image, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise UserError(f"highlight: mask shape {mask.shape} does not match image {image.shape[:2]}")
    if not 0.0 <= dim <= 1.0:
        raise UserError(f"highlight: dim must be in 0..1, got {dim}")
    inside = mask.astype(bool)
    out = (image.astype(np.float32) * dim).astype(np.uint8)
    out[inside] = image[inside]
    contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, thickness, lineType=cv2.LINE_8)
    return out


def crop_box(mask: np.ndarray, margin: float = 0.35, min_size: int = 32) -> tuple[int, int, int, int] | None:
    """A square (x1, y1, x2, y2) around the mask, grown by `margin` of its larger side; None if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    cx, cy = (xs.min() + xs.max() + 1) / 2.0, (ys.min() + ys.max() + 1) / 2.0
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * (1.0 + 2.0 * margin)
    half = max(side, min_size) / 2.0
    return (int(round(cx - half)), int(round(cy - half)), int(round(cx + half)), int(round(cy + half)))


def crop_padded(image: np.ndarray, box: tuple[int, int, int, int], fill: int = 0) -> np.ndarray:
    """`image[y1:y2, x1:x2]`, padding with `fill` where the box leaves the image."""
    x1, y1, x2, y2 = box
    height, width = image.shape[:2]
    out = np.full((y2 - y1, x2 - x1, *image.shape[2:]), fill, dtype=image.dtype)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return out


def highlighted_clip(frames: list[np.ndarray], masks: list[np.ndarray], size: int = 384, margin: float = 0.35,
                     dim: float = 0.35, max_frames: int = 4) -> list[np.ndarray]:
    """Up to `max_frames` evenly spaced highlighted crops (size x size) of one tracked instance.

    Frames where the mask is empty (instance occluded or lost) are skipped; an instance that is
    empty in every frame is an error, since there is nothing to describe.
    """
    if len(frames) != len(masks):
        raise UserError(f"highlight: {len(frames)} frames but {len(masks)} masks")
    usable = [i for i, mask in enumerate(masks) if mask.any()]
    if not usable:
        raise UserError("highlight: the instance's mask is empty in every frame")
    if len(usable) > max_frames:
        picks = np.linspace(0, len(usable) - 1, max_frames).round().astype(int)
        usable = [usable[i] for i in picks]
    clip = []
    for index in usable:
        lit = highlight_frame(frames[index], masks[index], dim=dim)
        box = crop_box(masks[index], margin=margin)
        crop = crop_padded(lit, box)  # type: ignore[arg-type]
        clip.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size
                               else cv2.INTER_LINEAR))
    return clip


def write_debug_images(images: list[np.ndarray], folder: str | Path, stem: str) -> list[Path]:
    """Save what the model saw as PNGs (`<stem>_00.png`, ...) so a person can look at it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{stem}_{index:02d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise UserError(f"could not write debug image {path}")
        paths.append(path)
    return paths
