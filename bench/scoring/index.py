"""Random access to the videos of a record file or folder, without loading it.

Scoring walks the ground truth in its own order and fetches each video's prediction by id, so
the two files need not list videos in the same order and neither is ever held in memory whole.
The index holds only (file, byte offset, line) per video.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vigil360.records import RecordError, read_jsonl_video, read_video_json, record_files, torn_last_line
from vigil360.schema import RecordKind, VideoRecord


@dataclass(frozen=True)
class _Place:
    path: Path
    offset: int | None  # None: a .json file holding one record
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.offset is not None else str(self.path)


class RecordIndex:
    def __init__(self, path: str | Path, kind: RecordKind, *, strict: bool = False) -> None:
        self.path = Path(path)
        self.kind = kind
        self.strict = strict  # refuse a torn last line instead of skipping it with a warning
        self._places: dict[str, _Place] = {}
        for file in record_files(self.path):
            if file.suffix == ".jsonl":
                self._scan_jsonl(file)
            else:
                self._add(self._video_id(file.read_bytes(), str(file), one_record=True), _Place(file, None, 1))

    def _add(self, video_id: str, place: _Place) -> None:
        if video_id in self._places:
            raise RecordError(f"{place}: video {video_id!r} already appears at {self._places[video_id]}")
        self._places[video_id] = place

    @staticmethod
    def _video_id(raw: bytes, where: str, one_record: bool) -> str | None:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise RecordError(f"{where}: malformed JSON: {error.msg}") from None
        if not isinstance(data, dict) or (not one_record and data.get("record") != "video"):
            return None
        try:
            return str(data["video"]["video_id"])
        except (KeyError, TypeError):
            raise RecordError(f"{where}: video.video_id: field required") from None

    def _scan_jsonl(self, file: Path) -> None:
        offset = 0
        with open(file, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if torn_last_line(raw, f"{file}:{number}", self.strict):
                    break
                # Only video lines carry the key "video"; other lines are validated when read.
                if b'"video"' in raw:
                    video_id = self._video_id(raw, f"{file}:{number}", one_record=False)
                    if video_id is not None:
                        self._add(video_id, _Place(file, offset, number))
                offset += len(raw)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._places

    def __len__(self) -> int:
        return len(self._places)

    @property
    def ids(self) -> list[str]:
        return list(self._places)

    def load(self, video_id: str) -> VideoRecord:
        place = self._places[video_id]
        if place.offset is None:
            record = read_video_json(place.path)
        else:
            record = read_jsonl_video(place.path, place.offset, place.line, strict=self.strict)
        if record.kind != self.kind:
            raise RecordError(
                f"{place}: video {video_id!r} is a {record.kind} record where {self.kind} was expected "
                "(are --pred and --gt swapped? To score ground truth against itself, see docs/schema.md)"
            )
        return record
