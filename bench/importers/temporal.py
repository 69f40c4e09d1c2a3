"""VIEW360 temporal annotation files: one video per line.

    Class_Location_NNN[_dirs] s1 e1 [s2 e2 ...]

- `Class` is an anomaly class as the authors spelt it (old files say `Glancing`); it is
  canonicalised with `schema.normalise_class`.
- `Location` may itself contain underscores (everything between the class and the first
  all-digit token); it is compared case-insensitively, so it is stored lower-case
  (`CAFE`, `Cafe` -> `cafe`).
- `NNN` is the clip number; `_dirs` is an optional run of direction letters, one per interval:
  `l` = left back, `r` = right back, `c` = center.
- `s e` pairs are frame numbers, end inclusive. The files do not say whether frames count
  from 0 or 1: `first_frame` (default 0) is subtracted so that stored frames are 0-based.

The `video_id` is the name without its direction suffix (`Stealing_Cafe_003`), the stem the
video files are expected to carry. The file holds neither frame rate nor frame size: they are
parameters (VIEW360 appears to be 30 fps).

Where the real release differs, this module is where that is fixed.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from vigil360.records import RecordError, describe_validation_error
from vigil360.schema import AnomalyInterval, Sector, Video, normalise_class

DIRECTION_LETTERS: dict[str, Sector] = {"l": "left_back", "r": "right_back", "c": "center"}


def _split_name(name: str, where: str) -> tuple[str, str, str, str]:
    """-> (class, location, number, direction letters)."""
    parts = name.split("_")
    digit_at = next((i for i, part in enumerate(parts) if i >= 2 and part.isdigit()), None)
    if digit_at is None:
        raise RecordError(f"{where}: name {name!r} is not Class_Location_NNN[_dirs]")
    rest = parts[digit_at + 1 :]
    if len(rest) > 1:
        raise RecordError(f"{where}: name {name!r} has more than one suffix after the clip number")
    letters = rest[0].lower() if rest else ""
    bad = sorted(set(letters) - set(DIRECTION_LETTERS))
    if bad:
        raise RecordError(f"{where}: direction suffix {rest[0]!r} has letters {bad}; expected only l, r, c")
    return parts[0], "_".join(parts[1:digit_at]), parts[digit_at], letters


def parse_temporal_line(
    line: str,
    where: str,
    *,
    fps: float,
    width: int,
    height: int,
    first_frame: int = 0,
    dataset: str | None = None,
) -> Video:
    """Parse one non-empty line; `where` ("file:line") prefixes every error."""
    tokens = line.split()
    name, numbers = tokens[0], tokens[1:]
    class_name, location, number, letters = _split_name(name, where)
    try:
        anomaly_class = normalise_class(class_name)
    except ValueError as error:
        raise RecordError(f"{where}: {error}") from None
    if not numbers or len(numbers) % 2:
        raise RecordError(f"{where}: expected start/end frame pairs after {name!r}, got {len(numbers)} numbers")
    try:
        frames = [int(token) - first_frame for token in numbers]
    except ValueError:
        raise RecordError(f"{where}: frame numbers must be integers: {' '.join(numbers)!r}") from None
    pairs = list(zip(frames[::2], frames[1::2], strict=True))
    if letters and len(letters) != len(pairs):
        raise RecordError(
            f"{where}: {len(letters)} direction letter(s) {letters!r} for {len(pairs)} interval(s); "
            "expected one per interval"
        )
    video_id = f"{class_name}_{location}_{number}"
    try:
        intervals = [
            AnomalyInterval(
                start_frame=start,
                end_frame=end,
                anomaly_class=anomaly_class,
                direction=DIRECTION_LETTERS[letters[i]] if letters else None,
            )
            for i, (start, end) in enumerate(pairs)
        ]
        return Video(
            video_id=video_id,
            fps=fps,
            width=width,
            height=height,
            intervals=intervals,
            location=location.lower(),
            dataset=dataset,
        )
    except ValidationError as error:
        raise RecordError(describe_validation_error(error, where)) from None


def read_temporal_file(
    path: str | Path,
    *,
    fps: float = 30.0,
    width: int,
    height: int,
    first_frame: int = 0,
    dataset: str | None = None,
) -> list[Video]:
    """All videos of a temporal file, in file order; blank lines and `#` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such temporal annotation file")
    videos: list[Video] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        video = parse_temporal_line(
            line, where, fps=fps, width=width, height=height, first_frame=first_frame, dataset=dataset
        )
        if video.video_id in seen:
            raise RecordError(f"{where}: video {video.video_id!r} already listed on line {seen[video.video_id]}")
        seen[video.video_id] = number
        videos.append(video)
    return videos
