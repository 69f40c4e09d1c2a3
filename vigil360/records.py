"""Reading and writing schema records: atomic JSON, append-only JSON Lines, clear errors.

Errors name the file, the line (for JSON Lines) and the JSON path of the offending value,
so a researcher converting another system's output can find the problem at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from vigil360.schema import (
    Alert,
    AlertLine,
    Entity,
    EntityInfo,
    EntityLine,
    Line,
    MaskLine,
    VideoLine,
    VideoRecord,
)

_LINE = TypeAdapter(Line)


class RecordError(ValueError):
    """A record file that does not validate; the message names file, line and JSON path."""


def _json_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "<root>"


class RecordWarning(UserWarning):
    """A record file was read with a problem it could recover from (a torn last line)."""


def _message(problem: dict) -> str:
    # NaN fails every comparison, so pydantic's message for it can read "should be less than 180".
    value = problem.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        return "not a number (NaN)" if math.isnan(value) else f"infinite ({value}); numbers must be finite"
    return problem["msg"]


def describe_validation_error(error: ValidationError, where: str, *, union_tagged: bool = False) -> str:
    """One line per problem; `union_tagged` drops the discriminator tag pydantic puts first."""
    skip = 1 if union_tagged else 0
    problems = [f"{_json_path(e['loc'][skip:])}: {_message(e)}" for e in error.errors()[:5]]
    more = "" if error.error_count() <= 5 else f" (and {error.error_count() - 5} more)"
    return f"{where}: " + "; ".join(problems) + more


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` so that `path` holds either the old or the new content, never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600 files; results are meant to be shared like any other output.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_video_json(path: str | Path, record: VideoRecord) -> None:
    atomic_write_text(path, record.model_dump_json(exclude_none=True) + "\n")


def record_to_lines(record: VideoRecord) -> Iterator[VideoLine | EntityLine | MaskLine | AlertLine]:
    video_id = record.video.video_id
    yield VideoLine(kind=record.kind, system=record.system, video=record.video)
    for entity in record.entities:
        yield EntityLine(video_id=video_id, entity=entity.info())
        for frame in entity.frames:
            yield MaskLine(
                video_id=video_id,
                entity_id=entity.entity_id,
                frame=frame,
                rle=entity.masks.get(frame),
                box=entity.boxes.get(frame),
            )
    for alert in record.alerts:
        yield AlertLine(video_id=video_id, alert=alert)


class JsonlWriter:
    """Append-only JSON Lines writer that writes every line through (a crash keeps all written lines).

    A line is written whole or not at all: when the disk is full or the file reaches its size
    limit mid-line, the partial line is cut off again and the error (naming the file) is raised,
    so the file always ends with a complete line.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed in close())
        self._size = os.fstat(self._handle.fileno()).st_size
        self._fsync = fsync

    def write(self, line: VideoLine | EntityLine | MaskLine | AlertLine) -> None:
        data = (line.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
        view = memoryview(data)
        try:
            while view:
                view = view[self._handle.write(view):]
            if self._fsync:
                os.fsync(self._handle.fileno())
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._handle.fileno(), self._size)
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from error
        self._size += len(data)

    def write_record(self, record: VideoRecord) -> None:
        for line in record_to_lines(record):
            self.write(line)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: Iterable[VideoRecord]) -> None:
    """Write a whole JSON Lines file atomically (for files produced in one go)."""
    text = "".join(
        line.model_dump_json(exclude_none=True) + "\n" for record in records for line in record_to_lines(record)
    )
    atomic_write_text(path, text)


class _Folder:
    """Folds the JSON Lines of one video into a VideoRecord."""

    def __init__(self, header: VideoLine) -> None:
        self.header = header
        self.infos: dict[str, dict[str, Any]] = {}
        self.masks: dict[str, dict[int, Any]] = {}
        self.boxes: dict[str, dict[int, Any]] = {}
        self.alerts: list[Alert] = []

    def add_entity(self, line: EntityLine) -> None:
        eid = line.entity.entity_id
        update = line.entity.model_dump(exclude_unset=True)
        self.infos.setdefault(eid, {}).update(update)
        self.masks.setdefault(eid, {})
        self.boxes.setdefault(eid, {})

    def add_mask(self, line: MaskLine, where: str) -> None:
        if line.entity_id not in self.infos:
            raise RecordError(f"{where}: mask for entity {line.entity_id!r} before its entity line")
        num_frames = self.header.video.num_frames
        if num_frames is not None and line.frame >= num_frames:
            raise RecordError(f"{where}: frame: {line.frame} is beyond the video's last frame {num_frames - 1}")
        size = (self.header.video.height, self.header.video.width)
        if line.rle is not None and tuple(line.rle.size) != size:
            raise RecordError(f"{where}: rle.size: {list(line.rle.size)} is not the video's [height, width] "
                              f"{list(size)}")
        if line.rle is not None:
            self.masks[line.entity_id][line.frame] = line.rle
        if line.box is not None:
            self.boxes[line.entity_id][line.frame] = line.box

    def add_alert(self, line: AlertLine, where: str) -> None:
        if line.alert.entity_id not in self.infos:
            raise RecordError(f"{where}: alert for entity {line.alert.entity_id!r} before its entity line")
        self.alerts.append(line.alert)

    def build(self, where: str) -> VideoRecord:
        entities = [
            Entity(**EntityInfo(**info).model_dump(), masks=self.masks[eid], boxes=self.boxes[eid])
            for eid, info in self.infos.items()
        ]
        try:
            return VideoRecord(
                schema_version=self.header.schema_version,
                kind=self.header.kind,
                system=self.header.system,
                video=self.header.video,
                entities=entities,
                alerts=self.alerts,
            )
        except ValidationError as error:
            raise RecordError(describe_validation_error(error, where)) from None


def torn_last_line(raw: bytes, where: str, strict: bool) -> bool:
    """True when `raw`, a file's last line, is torn (no newline, not JSON) and may be skipped.

    A writer killed mid-line (a crash, a full disk) leaves such a line; everything before it is
    complete. Refused with `strict`; otherwise skipped with a warning naming the file and line.
    """
    if raw.endswith(b"\n"):
        return False
    try:
        json.loads(raw)
        return False
    except ValueError:
        pass
    if strict:
        raise RecordError(f"{where}: torn last line (no newline, not complete JSON); without --strict "
                          "the lines before it are read and it is skipped")
    warnings.warn(RecordWarning(f"{where}: torn last line skipped ({len(raw)} bytes; the file was cut "
                                "while being written); the lines before it are read"), stacklevel=3)
    return True


def _iter_jsonl(
    path: Path, offset: int = 0, first_line: int = 1, single: bool = False, strict: bool = False
) -> Iterator[VideoRecord]:
    current: _Folder | None = None
    done: set[str] = set()
    with open(path, "rb") as binary:
        binary.seek(offset)
        for number, raw_bytes in enumerate(binary, start=first_line):
            where = f"{path}:{number}"
            if torn_last_line(raw_bytes, where, strict):
                break
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RecordError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start})") from None
            if not raw.strip():
                continue
            try:
                line = _LINE.validate_json(raw)
            except ValidationError as error:
                tagged = all(len(e["loc"]) > 1 for e in error.errors())
                raise RecordError(describe_validation_error(error, where, union_tagged=tagged)) from None
            if isinstance(line, VideoLine):
                if current is not None and single:
                    break
                if current is not None:
                    yield current.build(f"{path} (video {current.header.video.video_id})")
                    done.add(current.header.video.video_id)
                if line.video.video_id in done:
                    raise RecordError(f"{where}: video {line.video.video_id!r} appears twice in the file")
                current = _Folder(line)
                continue
            if current is None:
                raise RecordError(f"{where}: {line.record} line before any video line")
            if line.video_id != current.header.video.video_id:
                raise RecordError(
                    f"{where}: line for video {line.video_id!r} inside video "
                    f"{current.header.video.video_id!r} (a video's lines must be contiguous)"
                )
            if isinstance(line, EntityLine):
                current.add_entity(line)
            elif isinstance(line, AlertLine):
                current.add_alert(line, where)
            else:
                current.add_mask(line, where)
    if current is not None:
        yield current.build(f"{path} (video {current.header.video.video_id})")


def read_jsonl_video(path: str | Path, offset: int, first_line: int = 1, strict: bool = False) -> VideoRecord:
    """The one video whose video line starts at byte `offset` of a .jsonl file.

    Random access for scoring, which pairs predictions with ground truth video by video
    without loading either file whole; `first_line` keeps line numbers in errors right.
    """
    for record in _iter_jsonl(Path(path), offset, first_line, single=True, strict=strict):
        return record
    raise RecordError(f"{path}:{first_line}: no video at byte offset {offset}")


def read_video_json(path: str | Path) -> VideoRecord:
    path = Path(path)
    try:
        return VideoRecord.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise RecordError(describe_validation_error(error, str(path))) from None


def record_files(path: str | Path) -> list[Path]:
    """The record files behind `path`: itself, or a folder's .json/.jsonl files in sorted order."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in {".json", ".jsonl"} and p.is_file())
        if not files:
            raise RecordError(f"{path}: folder holds no .json or .jsonl records")
        return files
    if path.suffix not in {".json", ".jsonl"}:
        raise RecordError(f"{path}: expected a .json or .jsonl record file")
    return [path]


def iter_records(path: str | Path, *, strict: bool = False) -> Iterator[VideoRecord]:
    """Stream VideoRecords from a .jsonl file, a .json file, or a folder of either (sorted).

    A torn last line of a .jsonl file is skipped with a `RecordWarning` (`strict`: refused).
    """
    for file in record_files(path):
        if file.suffix == ".jsonl":
            yield from _iter_jsonl(file, strict=strict)
        else:
            yield read_video_json(file)


def load_json_file(path: str | Path) -> Any:
    """json.load with an error that names the file, line and column."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}:{error.lineno}:{error.colno}: malformed JSON: {error.msg}") from None
