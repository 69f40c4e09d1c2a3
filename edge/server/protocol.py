"""What the server needs from the loop: exactly the methods `EdgeLoop` promises, nothing more.

The server is written against this protocol so it can be tested with a small double, and so a
different loop (a recorded replay, a GPU build) can be served the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel

from vigil360.edge.events import AlertEvent


class ServableLoop(Protocol):
    settings: Any  # the current `Settings` (read-only for the server: changes go through update_settings)

    def add_sink(self, sink: Callable[[Any], None]) -> None:
        """Register a callable the loop calls (on its own thread) with every event it emits."""

    def run(self, stop_event: threading.Event | None = None) -> Any:
        """Process the source until it ends or `stop_event` is set; returns a run summary."""

    def status(self) -> BaseModel:
        """A snapshot: source, models/backends, fps, per-stage p50/p95, frames, dropped, running."""

    def latest_preview_jpeg(self, max_width: int = 960) -> bytes | None:
        """The newest annotated equirectangular frame as JPEG, or None before the first frame."""

    def update_settings(self, patch: dict) -> BaseModel:
        """Apply a partial settings change; raises pydantic's ValidationError if it is invalid."""

    def repeat_last(self) -> AlertEvent | None:
        """Repeat (speak again) the last alert and return it; None if there was none."""
