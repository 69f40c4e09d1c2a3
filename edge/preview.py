"""Pictures for reviewers: the server's live preview and the annotated video, both the frame
with entity outlines, ids and captions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vigil360.edge.geometry import anglebox_to_pixels
from vigil360.edge.source import Frame
from vigil360.errors import UserError
from vigil360.schema import AngleBox

Outline = tuple[str, AngleBox, bool]  # entity id, box, flagged


def draw_outlines(image: np.ndarray, outlines: list[Outline], label_for: Callable[[str], str]) -> np.ndarray:
    height, width = image.shape[:2]
    for entity_id, box, flagged in outlines:
        x0, y0, x1, y1 = anglebox_to_pixels(box, width, height)
        colour = (0, 0, 255) if flagged else (0, 200, 255)
        # A box over the seam is drawn twice, once on each side of the image.
        for shift in (0, -width) if x1 > width else (0, width) if x0 < 0 else (0,):
            cv2.rectangle(image, (int(x0 + shift), int(y0)), (int(x1 + shift), int(y1)), colour, 2)
        cv2.putText(image, label_for(entity_id)[:60], (int(x0) % width, max(12, int(y0) - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return image


@dataclass
class _Rendered:
    image: np.ndarray | None = None
    outlines: list[Outline] = field(default_factory=list)
    jpeg: bytes | None = None
    at: float = 0.0
    width: int = 0


class Preview:
    """The last frame and its outlines, set by the loop thread and rendered on request by others."""

    def __init__(self, label_for: Callable[[str], str]) -> None:
        self._label_for = label_for
        self._state = _Rendered()
        self._lock = threading.Lock()

    def update(self, image: np.ndarray, outlines: list[Outline]) -> None:
        with self._lock:
            self._state.image = image
            self._state.outlines = outlines

    def jpeg(self, max_width: int, max_hz: float) -> bytes | None:
        with self._lock:
            state = self._state
            if state.image is None:
                return None
            now = time.perf_counter()
            fresh = now - state.at < 1.0 / max_hz
            if state.jpeg is not None and fresh and state.width == max_width:
                return state.jpeg
            image, outlines = state.image, list(state.outlines)
        height, width = image.shape[:2]
        scale = min(1.0, max_width / width)
        small = cv2.resize(image, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1.0 else image.copy()
        ok, encoded = cv2.imencode(".jpg", draw_outlines(small, outlines, self._label_for),
                                   [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return None
        with self._lock:
            state.jpeg, state.at, state.width = encoded.tobytes(), now, max_width
        return state.jpeg


class AnnotatedVideo:
    """The run as a video with flagged masks tinted and outlines drawn (opened on the first frame)."""

    def __init__(self, path: str | Path, fps: float, label_for: Callable[[str], str]) -> None:
        self.path = Path(path)
        self._fps = fps
        self._label_for = label_for
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: Frame, tracks: list, outlines: list[Outline]) -> None:
        height, width = frame.image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self._fps, (width, height))
            if not self._writer.isOpened():
                raise UserError(f"{self.path}: cannot write the annotated video")
        image = frame.image.copy()
        for track in tracks:
            if track.mask is not None and track.flagged:
                full = cv2.resize(track.mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                image[full > 0] = (0.5 * image[full > 0] + (0, 0, 127)).astype(np.uint8)
        self._writer.write(draw_outlines(image, outlines, self._label_for))

    def release(self) -> None:
        if self._writer is not None:
            self._writer.release()
