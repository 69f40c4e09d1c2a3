"""The local engine: one process, one `VideoRunner`, videos one after another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vigil360.bench.engines.runner import SystemSpec, VideoRunner
from vigil360.bench.engines.store import VideoResult


def run_local(videos: list[Path], spec: SystemSpec) -> Iterator[tuple[VideoResult, str | None]]:
    if not videos:
        return
    runner = VideoRunner(spec)
    for path in videos:
        yield runner.run(path)

