"""What the on-device loop calls (Grounder, Captioner) and what every backend provides (VlmBackend).

Grounding and captioning logic lives once, in `tasks.py`; a backend only turns a request (images
+ system/user text + a token budget) into text. So the three backends - transformers,
onnxruntime, an OpenAI-compatible HTTP server - are interchangeable by config.

Boxes are in view pixels (x1, y1, x2, y2) of the perspective view the model was given; edge/
converts them to angles, because `models` never imports `edge`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from vigil360.schema import Caption, Role


@dataclass(frozen=True)
class GroundedEntity:
    view_index: int
    box_xyxy: tuple[float, float, float, float]
    role: Role
    label: str
    confidence: float | None  # None when the model gave none: never invented


@dataclass
class GroundingResult:
    entities: list[GroundedEntity] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one reason per entity or output dropped
    raw_text: str = ""
    repairs: list[str] = field(default_factory=list)  # what was fixed to read the output

    @property
    def ok(self) -> bool:
        """The output was read: entities were found, or the model said there are none ([])."""
        return bool(self.entities) or not self.rejected


@dataclass
class CaptionResult:
    caption: Caption
    raw_text: str
    ok: bool
    reason: str | None = None
    repairs: list[str] = field(default_factory=list)


@runtime_checkable
class Grounder(Protocol):
    def ground(self, views: list[np.ndarray], context: str) -> GroundingResult: ...


@runtime_checkable
class Captioner(Protocol):
    def describe(self, clip: list[np.ndarray], context: str) -> CaptionResult: ...


@dataclass(frozen=True)
class VlmRequest:
    images: list[np.ndarray]  # RGB uint8, HxWx3
    system: str
    user: str  # the images come first, then this text
    max_new_tokens: int = 128


@dataclass
class Generation:
    text: str
    new_tokens: int | None  # None when a server does not report usage
    stop: Literal["eos", "budget"]
    total_s: float
    first_token_s: float | None = None  # time to first token, from the request
    vision_s: float | None = None  # image preprocessing + vision encoder, where the backend can tell


@runtime_checkable
class VlmBackend(Protocol):
    name: str

    def stream(self, request: VlmRequest) -> Iterator[str]:
        """Text pieces as they are decoded (the last one may be empty)."""
        ...

    def generate(self, request: VlmRequest) -> Generation: ...


def check_images(images: list[np.ndarray], what: str = "views") -> None:
    """Refuse what a model cannot see, with a message naming the problem."""
    from vigil360.errors import UserError

    if not images:
        raise UserError(f"no {what} given to the VLM")
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise UserError(f"{what}[{index}]: expected an RGB HxWx3 array, got {shape}")
        if image.dtype != np.uint8:
            raise UserError(f"{what}[{index}]: expected uint8 pixels, got {image.dtype}")
        if min(image.shape[:2]) < 2:
            raise UserError(f"{what}[{index}]: image too small ({image.shape[1]}x{image.shape[0]})")
