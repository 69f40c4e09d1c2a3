"""Predictions as the loop makes them: schema JSON Lines, flushed line by line.

One `VideoLine` first, then an `EntityLine` when an entity is first announced (and again when
its caption or sentence is refined: later lines replace the fields they set), an `AlertLine`
for every alert (schema 1.1, with a `MaskLine` holding the alert's box on its frame, mask or
not, so the bench can replay what was said about where), and `MaskLine`s with its
equirectangular mask and angle box per frame. `vigil360.records.iter_records` folds
the file back into a `VideoRecord` (kind "prediction") that the bench scores directly; a crash
loses nothing already written.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from vigil360 import masks
from vigil360.records import JsonlWriter
from vigil360.schema import (
    RLE,
    Alert,
    AlertLine,
    AngleBox,
    Caption,
    EntityInfo,
    EntityLine,
    MaskLine,
    Role,
    Video,
    VideoLine,
)

SYSTEM_NAME = "vigil360"


def upsampled_rle(mask: np.ndarray, width: int, height: int) -> RLE:
    """COCO RLE of `mask` upsampled (nearest) to width x height, without building the full mask.

    Encoding a full 1920x960 mask costs ~8 ms here - a quarter of the frame budget. When the
    scale is an integer (the reflex tier's 480x240 -> 1920x960), the run boundaries follow from
    the small mask alone: in COCO's column-major stream a value can change only where it changes
    down a small column, or between one full-size column and the next.
    """
    small_h, small_w = mask.shape
    sx, sy = width // small_w, height // small_h
    if sx * small_w != width or sy * small_h != height:
        return masks.encode(cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST))
    cols = np.ascontiguousarray(mask.T, dtype=bool)  # one row per small column, top to bottom
    reps = np.arange(sx)
    # Changes inside a column, at row r (r >= 1): in every one of the column's sx copies.
    col, row = np.nonzero(cols[:, 1:] != cols[:, :-1])
    inside = ((col[:, None] * sx + reps[None, :]) * height + (row[:, None] + 1) * sy).ravel()
    # Changes at the top of each full-size column: against the bottom of the column before it
    # (the stream starts after an implicit 0).
    first, last = cols[:, 0], cols[:, -1]
    before_copy0 = np.concatenate([[False], last[:-1]])
    at_copy0 = np.nonzero(first != before_copy0)[0] * sx * height
    at_later = (np.nonzero(first != last)[0][:, None] * sx + reps[None, 1:]).ravel() * height
    changes = np.unique(np.concatenate([inside, at_copy0, at_later]).astype(np.int64))
    counts = np.diff(np.concatenate([[0], changes, [width * height]])).tolist()
    raw = coco_mask.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    return RLE.model_construct(size=(height, width), counts=raw["counts"].decode("ascii"))  # valid by construction


class DegradingWriter:
    """The recorder's writer on a live run: a failed write (disk full, file too large) ends the
    recording - never the wearer's alerts. The failure names the file; lines lost are counted.

    Recording stops at the first failure rather than retrying: a later line could refer to an
    entity whose line was lost, and the file must stay readable up to its last complete line.
    """

    def __init__(self, writer: JsonlWriter) -> None:
        self._writer = writer
        self.failure: str | None = None
        self.lines_lost = 0

    def write(self, line: VideoLine | EntityLine | MaskLine) -> None:
        if self.failure is not None:
            self.lines_lost += 1
            return
        try:
            self._writer.write(line)
        except OSError as error:
            self.failure = f"recording stopped: {error}"
            self.lines_lost += 1

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as error:
            self.failure = self.failure or f"recording stopped: {error}"


class PredictionRecorder:
    def __init__(self, path: str | Path, video: Video, *, system: str = SYSTEM_NAME) -> None:
        self.path = Path(path)
        # A run owns its predictions file: appending to an old run's file would repeat the video.
        self.path.unlink(missing_ok=True)
        self.video = video
        self._writer = DegradingWriter(JsonlWriter(self.path))
        self._writer.write(VideoLine(kind="prediction", system=system, video=video))
        self._roles: dict[str, Role] = {}
        self.masks_written = 0
        self.alerts_written = 0

    @property
    def entity_ids(self) -> list[str]:
        return list(self._roles)

    def entity(self, entity_id: str, role: Role, *, label: str | None = None, caption: Caption | None = None,
               sentence: str | None = None, score: float | None = None,
               first_alert_frame: int | None = None) -> None:
        """Write or refine an entity; only the fields given are (re)set."""
        fields = {"label": label, "caption": caption, "sentence": sentence, "score": score,
                  "first_alert_frame": first_alert_frame}
        info = EntityInfo(entity_id=entity_id, role=role, **{k: v for k, v in fields.items() if v is not None})
        self._roles[entity_id] = role
        self._writer.write(EntityLine(video_id=self.video.video_id, entity=info))

    def mask(self, entity_id: str, frame: int, *, rle: RLE | None = None, box: AngleBox | None = None) -> None:
        if entity_id not in self._roles:
            raise ValueError(f"mask for entity {entity_id!r} before its entity line")
        if rle is not None and tuple(rle.size) != (self.video.height, self.video.width):
            raise ValueError(f"mask size {list(rle.size)} is not the video's "
                             f"[{self.video.height}, {self.video.width}]")
        self._writer.write(MaskLine(video_id=self.video.video_id, entity_id=entity_id, frame=frame, rle=rle, box=box))
        self.masks_written += 1

    def alert(self, alert: Alert) -> None:
        """One alert line, and the alert's box on its frame (a track may have no mask there)."""
        if alert.entity_id not in self._roles:
            raise ValueError(f"alert for entity {alert.entity_id!r} before its entity line")
        self._writer.write(AlertLine(video_id=self.video.video_id, alert=alert))
        self.mask(alert.entity_id, alert.frame, box=alert.box)
        self.alerts_written += 1

    @property
    def failure(self) -> str | None:
        """Why recording stopped (naming the file), or None while it works."""
        return self._writer.failure

    @property
    def lines_lost(self) -> int:
        return self._writer.lines_lost

    def close(self) -> None:
        self._writer.close()
