"""A camera read that blocks at close: the capture is released only after the reader's last read."""

from __future__ import annotations

import threading

import numpy as np

from vigil360.edge.source import LiveSource


class _BlockingCamera:
    """Delivers the first two frames, then blocks in `read` until `unblock` is set (a dead stream)."""

    def __init__(self) -> None:
        self.reads = 0
        self.reading = False
        self.blocked = threading.Event()
        self.unblock = threading.Event()
        self.released = threading.Event()
        self.released_during_read = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, _prop) -> float:
        return 30.0

    def read(self):
        self.reading = True
        self.reads += 1
        if self.reads > 2:
            self.blocked.set()
            self.unblock.wait(timeout=30)
        self.reading = False
        return True, np.zeros((32, 64, 3), np.uint8)

    def release(self) -> None:
        self.released_during_read = self.released_during_read or self.reading
        self.released.set()


def test_capture_is_released_after_the_blocked_read_returns_and_close_says_so():
    camera = _BlockingCamera()
    source = LiveSource(0, capture=camera, close_timeout_s=0.05)
    frames = source.frames()
    next(frames)
    assert camera.blocked.wait(timeout=30), "the reader is now stuck in a read"
    frames.close()
    source.close()
    assert not camera.released.is_set(), "never released under a read in progress"
    assert source.close_problem and "still blocked" in source.close_problem
    camera.unblock.set()
    assert camera.released.wait(timeout=30), "released once the read returned"
    assert not camera.released_during_read


def test_an_unstarted_live_source_releases_at_once():
    camera = _BlockingCamera()
    LiveSource(0, capture=camera).close()
    assert camera.released.is_set() and not camera.released_during_read
