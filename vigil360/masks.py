"""Mask <-> COCO RLE, thin and typed over pycocotools (the field's reference implementation)."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from vigil360.schema import RLE


def encode(mask: np.ndarray) -> RLE:
    """Encode one boolean/0-1 mask of shape (H, W)."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    raw = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    # pycocotools' own output: valid by construction, so not re-validated (that costs ~0.1 ms).
    return RLE.model_construct(size=(int(raw["size"][0]), int(raw["size"][1])), counts=raw["counts"].decode("ascii"))


def to_coco(rle: RLE) -> dict:
    return {"size": [rle.size[0], rle.size[1]], "counts": rle.counts.encode("ascii")}


def decode(rle: RLE) -> np.ndarray:
    return coco_mask.decode(to_coco(rle)).astype(bool)


def area(rle: RLE) -> int:
    return int(coco_mask.area(to_coco(rle)))


def iou(a: RLE, b: RLE) -> float:
    """IoU of two masks of the same size; two empty masks have IoU 0 by pycocotools' rule."""
    if tuple(a.size) != tuple(b.size):
        raise ValueError(f"mask sizes differ: {list(a.size)} vs {list(b.size)}")
    return float(coco_mask.iou([to_coco(a)], [to_coco(b)], [0])[0][0])


def empty(height: int, width: int) -> RLE:
    return encode(np.zeros((height, width), dtype=bool))
