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
