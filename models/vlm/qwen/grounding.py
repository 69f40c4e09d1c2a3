"""Qwen-VL's own grounding convention: the prompt form it was trained on, and its box coordinates.

Both families answer grounding requests with ```json [{"bbox_2d": [x1, y1, x2, y2], "label": ...}]```
when asked to "locate ... and output the bbox coordinates in JSON format" (the Qwen-VL cookbooks'
form). Their coordinates differ:
- Qwen2.5-VL: absolute pixels of the image *as resized for the model* (`smart_resize`: sides
  rounded to multiples of patch x merge within the pixel budget), so a box maps back to the view
  by that image's resized width and height (QwenLM/Qwen3-VL issue 931);
- Qwen3-VL: relative, 0..1000 on both axes whatever the image size (Qwen3-VL cookbooks,
  "spatial understanding").
The role each entity plays is asked for as an extra key, so the strict parser can keep refusing
to guess roles.
"""

from __future__ import annotations

from collections.abc import Callable

from vigil360.models.vlm.interfaces import VlmRequest
from vigil360.models.vlm.prompts import GROUNDING_SYSTEM, _one_line

QWEN3_SCALE = 1000.0

_TASK = """{views} Scene context: {context}

Locate the entities involved in the unusual event and output their bbox coordinates in JSON format.
For each one give "bbox_2d" ({coordinates}), "label" (what it is){view_key} and "role": perpetrator (who causes
the event), victim (a person it is done to), target (an object it is done to) or related (another participant).
Output [] if nothing unusual is visible."""


class QwenGrounding:
    """Prompt and coordinate frame for one family; `resize(width, height)` is the model's resize."""

    def __init__(self, family: str, resize: Callable[[int, int], tuple[int, int]]):
        if family not in ("qwen2_5_vl", "qwen3_vl"):
            raise ValueError(f"no Qwen grounding convention for {family!r}")
        self.family = family
        self.resize = resize

    def request(self, num_views: int, context: str, max_new_tokens: int = 160) -> VlmRequest:
        if num_views == 1:
            views, view_key = "One camera view.", ""
        else:
            views = f"{num_views} camera views, numbered 1 to {num_views} in the order shown."
            view_key = ', "view" (the number of the image it is in)'
        coordinates = ("absolute pixel coordinates of the image" if self.family == "qwen2_5_vl"
                       else "relative coordinates, 0 to 1000")
        user = _TASK.format(views=views, context=_one_line(context) or "none given", coordinates=coordinates,
                            view_key=view_key)
        return VlmRequest(images=[], system=GROUNDING_SYSTEM, user=user, max_new_tokens=max_new_tokens)

    def box_frames(self, view_sizes: list[tuple[int, int]]) -> list[tuple[float, float]]:
        """The (width, height) each view's boxes are expressed in."""
        if self.family == "qwen3_vl":
            return [(QWEN3_SCALE, QWEN3_SCALE) for _ in view_sizes]
        return [tuple(float(v) for v in self.resize(width, height)) for width, height in view_sizes]


def processor_resize(image_processor) -> Callable[[int, int], tuple[int, int]]:
    """The (width, height) a Qwen2VL image processor resizes a (width, height) image to."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    size = image_processor.size

    def resize(width: int, height: int) -> tuple[int, int]:
        new_height, new_width = smart_resize(height, width, factor=factor, min_pixels=size["shortest_edge"],
                                             max_pixels=size["longest_edge"])
        return new_width, new_height

    return resize
