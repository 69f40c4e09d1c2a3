"""Runs the served loop on a background thread and remembers how it ended."""

from __future__ import annotations

import threading
from typing import Any

from vigil360.edge.server.protocol import ServableLoop


class LoopRunner:
    """Runs `loop.run` on a background thread and remembers how it ended."""

    def __init__(self, loop: ServableLoop) -> None:
        self.loop = loop
        self.stop_event = threading.Event()
        self.summary: Any = None
        self.error: str | None = None
        self.started = False
        self._thread = threading.Thread(target=self._run, name="vigil360-loop", daemon=True)

    def start(self) -> None:
        self.started = True
        self._thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.loop.run(self.stop_event)
        except Exception as error:  # noqa: BLE001 - reported by /healthz and /v1/status, not lost
            self.error = f"{type(error).__name__}: {error}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Wait for the loop to end by itself (a file source, a failure); True when it has."""
        if self.started:
            self._thread.join(timeout)
        return self.started and not self.running

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.started:
            self._thread.join(timeout)
