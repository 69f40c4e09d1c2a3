"""Frame sources: a video file, an image folder, a camera index or a stream URL (OpenCV).

Every source yields `Frame`s of one equirectangular size (2:1). A non-2:1 input is an error
unless the caller chose how to make it 2:1 (`fit="crop"`: centre crop; `fit="stretch"`:
resize, for footage known to be equirectangular at a wrong aspect).

Live sources (camera, stream) read in a background thread into a slot of `buffer` frames;
when the loop falls behind, the oldest frame is replaced and counted as dropped, so latency
never grows. File sources run as fast as the loop allows, or paced to the video clock with
`realtime=True` - then frames the loop is too late for are skipped (and counted) the same way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from vigil360.errors import UserError

Fit = Literal["check", "crop", "stretch"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class SourceError(UserError):
    """The source cannot be opened, or ended in a way that means the input is damaged."""


@dataclass
class Frame:
    index: int  # 0-based position in the source (dropped frames keep their index)
    time_s: float  # the source's clock
    image: np.ndarray  # BGR uint8, (H, W, 3), W = 2H
    read_at: float  # time.perf_counter() when it was read: the start of frame->alert latency
    decode_ms: float | None = None  # decoding time, when decoded off the loop's thread


def fit_equirect(image: np.ndarray, fit: Fit, where: str) -> np.ndarray:
    height, width = image.shape[:2]
    if width == 2 * height:
        return image
    if fit == "check":
        raise SourceError(
            f"{where}: frames are {width}x{height}, not equirectangular 2:1; pass --crop to centre-crop "
            f"or --assume-equirect to resize them to 2:1"
        )
    if fit == "stretch":
        new_height = max(1, (width // 2 + height) // 2)
        return cv2.resize(image, (2 * new_height, new_height), interpolation=cv2.INTER_AREA)
    if width > 2 * height:
        left = (width - 2 * height) // 2
        return image[:, left: left + 2 * height]
    top = (height - width // 2) // 2
    return image[top: top + width // 2, : 2 * (width // 2)]


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class FrameSource:
    """Base: `frames()` yields Frames; `dropped` counts frames skipped by the latest-frame policy."""

    live = False

    def __init__(self, description: str, fps: float, fit: Fit) -> None:
        self.description = description
        self.fps = fps
        self.fit = fit
        self.dropped = 0
        self.width = 0
        self.height = 0
        self.num_frames: int | None = None

    def frames(self) -> Iterator[Frame]:
        raise TypeError(f"{type(self).__name__} does not yield frames")

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def _set_size(self, image: np.ndarray) -> None:
        self.height, self.width = image.shape[:2]


class VideoFileSource(FrameSource):
    def __init__(self, path: str | Path, *, fit: Fit = "check", realtime: bool = False,
                 fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise SourceError(f"{self.path}: cannot open as a video (corrupt, truncated or unknown format)")
        native_fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(f"video file {self.path}", fps or (native_fps if native_fps > 0 else 30.0), fit)
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.num_frames = count if count > 0 else None
        self.realtime = realtime
        first = self._read()
        if first is None:
            raise SourceError(f"{self.path}: no frame could be decoded (corrupt or empty video)")
        self._first: np.ndarray | None = fit_equirect(_as_bgr(first), fit, str(self.path))
        self._set_size(self._first)

    def _read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok and image is not None else None

    def frames(self) -> Iterator[Frame]:
        return self._paced() if self.realtime else self._prefetched()

    def _images(self) -> Iterator[np.ndarray]:
        """Fitted images in order, starting with the one decoded when the file was opened.
        Lazy: each `next` decodes one frame, so callers can time it or grab past frames between."""
        pending, self._first = self._first, None
        if pending is not None:
            yield pending
        while (raw := self._read()) is not None:
            yield self._fit(raw)

    def _prefetched(self) -> Iterator[Frame]:
        """As fast as the loop goes, decoding one frame ahead in a thread (OpenCV releases the GIL,
        so decoding overlaps the loop's work on the frame before).

        Latency starts at the frame's own decode: `read_at` is the hand-over time less the decode
        time. The time a decoded-ahead frame waits for the loop is not counted - a live camera
        delivers frames as they happen, not ahead of time (LiveSource measures from capture).
        """
        handoff: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    handoff.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            index = 0
            images = self._images()
            try:
                while not stop.is_set():
                    started = time.perf_counter()
                    image = next(images, None)
                    if image is None:
                        break
                    if not put((index, image, time.perf_counter() - started)):
                        return
                    index += 1
                if not stop.is_set():
                    self._check_complete(index)
                    put(None)
            except BaseException as error:  # noqa: BLE001 - re-raised on the loop's thread
                put(error)

        thread = threading.Thread(target=produce, name="vigil360-decode", daemon=True)
        self._producer = (stop, thread)
        thread.start()
        try:
            while (item := handoff.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                index, image, decode_s = item
                yield Frame(index, index / self.fps, image, time.perf_counter() - decode_s, decode_s * 1000.0)
        finally:
            stop.set()
            thread.join(timeout=5.0)

    def _paced(self) -> Iterator[Frame]:
        """Paced to the video clock (--realtime); when the loop is late, frames are skipped."""
        index = 0
        start = time.perf_counter()
        images = self._images()
        while True:
            due = start + index / self.fps
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            else:
                # Too late for this frame: skip to the one due now (latest-frame policy).
                for _ in range(int((now - due) * self.fps)):
                    if not self._capture.grab():
                        break
                    index += 1
                    self.dropped += 1
            # Latency is counted from before decoding: for a file, the frame exists once it is due.
            read_at = time.perf_counter()
            image = next(images, None)
            if image is None:
                break
            yield Frame(index, index / self.fps, image, read_at)
            index += 1
        self._check_complete(index)

    def _fit(self, raw: np.ndarray) -> np.ndarray:
        image = fit_equirect(_as_bgr(raw), self.fit, str(self.path))
        if image.shape[:2] != (self.height, self.width):
            size = f"{image.shape[1]}x{image.shape[0]}"
            raise SourceError(f"{self.path}: frame size changed mid-stream to {size}")
        return image

    def _check_complete(self, read: int) -> None:
        # The container says how many frames it holds; decoding far fewer means the file was cut
        # short or is damaged. A few frames of slack absorb containers whose count is estimated.
        if self.num_frames is not None and read < self.num_frames - max(2, self.num_frames // 100):
            raise SourceError(
                f"{self.path}: video ended after {read} of {self.num_frames} frames (truncated or corrupt)"
            )

    def close(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:  # the decoding thread must be gone before the capture is freed
            producer[0].set()
            producer[1].join(timeout=5.0)
        self._capture.release()


class ImageFolderSource(FrameSource):
    def __init__(self, folder: str | Path, *, fit: Fit = "check", fps: float = 30.0,
                 realtime: bool = False) -> None:
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"{self.folder}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        super().__init__(f"image folder {self.folder} ({len(self.files)} images)", fps, fit)
        self.num_frames = len(self.files)
        self.realtime = realtime
        self._set_size(self._load(self.files[0]))

    def _load(self, path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{path}: cannot decode image (corrupt or not an image)")
        return fit_equirect(image, self.fit, str(path))

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        for index, path in enumerate(self.files):
            if self.realtime:
                due = start + index / self.fps
                if time.perf_counter() < due:
                    time.sleep(due - time.perf_counter())
            image = self._load(path)
            if image.shape[:2] != (self.height, self.width):
                raise SourceError(f"{path}: image size {image.shape[1]}x{image.shape[0]} differs from the "
                                  f"first image's {self.width}x{self.height}")
            yield Frame(index, index / self.fps, image, time.perf_counter())


class LatestFrames:
    """A bounded slot filled by a reader thread: newest frames win, replaced ones are counted."""

    def __init__(self, read: Callable[[], np.ndarray | None], capacity: int = 1,
                 on_exit: Callable[[], None] | None = None) -> None:
        self._read = read
        self._on_exit = on_exit  # runs on the reader thread after its last read (releases the device)
        self._slot: deque[tuple[int, float, np.ndarray]] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.dropped = 0
        self.produced = 0
        self._thread = threading.Thread(target=self._run, name="vigil360-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is None:
                    break
                with self._cond:
                    if len(self._slot) >= self._capacity:
                        self._slot.popleft()
                        self.dropped += 1
                    self._slot.append((self.produced, time.perf_counter(), image))
                    self.produced += 1
                    self._cond.notify()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer thread, re-raised there
            self._error = error
        finally:
            try:
                if self._on_exit is not None:
                    self._on_exit()
            finally:
                with self._cond:
                    self._ended = True
                    self._cond.notify()

    def get(self, timeout: float = 5.0) -> tuple[int, float, np.ndarray] | None:
        """The oldest kept frame; None when the reader ended and nothing is left."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._slot or self._ended, timeout):
                raise SourceError(f"no frame from the live source for {timeout:.0f} s")
            if self._slot:
                return self._slot.popleft()
            if self._error is not None:
                raise self._error
            return None

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the reader to end; True when it has (a read blocked on a dead stream may outlast `timeout`)."""
        self._stop.set()
        if self.started:
            self._thread.join(timeout=timeout)
        return not self._thread.is_alive()


class LiveSource(FrameSource):
    """A camera index or a stream URL, read with the latest-frame policy."""

    live = True

    def __init__(self, spec: int | str, *, fit: Fit = "check", buffer: int = 1,
                 capture: cv2.VideoCapture | None = None, close_timeout_s: float = 2.0) -> None:
        self._capture = capture if capture is not None else cv2.VideoCapture(spec)
        what = f"camera {spec}" if isinstance(spec, int) else f"stream {spec}"
        if not self._capture.isOpened():
            raise SourceError(f"cannot open {what}")
        native_fps = self._capture.get(cv2.CAP_PROP_FPS)
        super().__init__(what, native_fps if 0 < native_fps < 240 else 30.0, fit)
        ok, first = self._capture.read()
        if not ok or first is None:
            raise SourceError(f"{what}: opened but delivers no frames")
        self._set_size(fit_equirect(_as_bgr(first), fit, what))
        # The reader thread releases the capture after its last read: releasing it under a read
        # in progress is undefined behaviour in OpenCV's backends.
        self._reader = LatestFrames(self._read_fitted, capacity=buffer, on_exit=self._capture.release)
        self._start = time.perf_counter()
        self._close_timeout_s = close_timeout_s
        self.close_problem: str | None = None

    def _read_fitted(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return fit_equirect(_as_bgr(image), self.fit, self.description) if ok and image is not None else None

    def frames(self) -> Iterator[Frame]:
        self._reader.start()
        while (item := self._reader.get()) is not None:
            index, read_at, image = item
            self.dropped = self._reader.dropped
            yield Frame(index, read_at - self._start, image, read_at)
        self.dropped = self._reader.dropped

    def close(self) -> None:
        if not self._reader.started:
            self._capture.release()
            return
        if not self._reader.stop(self._close_timeout_s):
            self.close_problem = (f"{self.description}: a read was still blocked {self._close_timeout_s:g} s after "
                                  "close; the capture is released when it returns")


def open_source(spec: str | Path, *, fit: Fit = "check", realtime: bool = False, fps: float | None = None,
                live_buffer: int = 1) -> FrameSource:
    """A camera index ('0'), a stream URL ('rtsp://...'), an image folder or a video file."""
    text = str(spec)
    if text.isdigit():
        return LiveSource(int(text), fit=fit, buffer=live_buffer)
    if "://" in text:
        return LiveSource(text, fit=fit, buffer=live_buffer)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, fit=fit, fps=fps or 30.0, realtime=realtime)
    if not path.exists():
        raise SourceError(f"{path}: no such file, folder, camera index or URL")
    return VideoFileSource(path, fit=fit, realtime=realtime, fps=fps)
