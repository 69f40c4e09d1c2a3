"""A scripted stand-in for the loop (the server's protocol, real `edge/events.py` events) and
helpers shared by the server tests. Acceptance tests use the real `EdgeLoop` instead."""

from __future__ import annotations

import socket
import struct
import threading
import time

import cv2
import numpy as np
import pytest
from pydantic import BaseModel

from vigil360.config import Settings
from vigil360.edge.events import AlertEvent, CaptionEvent, StageLatency, StatsEvent, TrackEvent
from vigil360.edge.source import Frame, FrameSource
from vigil360.schema import AngleBox, Caption


class ScriptedStatus(BaseModel):
    source: str
    running: bool
    frames: int
    fps: float
    dropped_frames: int
    stages: dict[str, StageLatency]


class ScriptedLoop:
    """Emits, per frame, a track event for two entities; a stats event every 10 frames; an alert at
    frame `alert_at` (urgent; also every `alert_every` frames if set) and a caption 5 frames after
    `alert_at`. `fps` paces the frames."""

    def __init__(self, frames: int = 60, fps: float = 100.0, alert_at: int = 20, alert_every: int = 0) -> None:
        self.frames, self.fps, self.alert_at, self.alert_every = frames, fps, alert_at, alert_every
        self.settings = Settings()
        self._sinks = []
        self._done = 0
        self._running = False
        self._last_alert: AlertEvent | None = None
        self.sink_seconds: list[float] = []
        image = np.zeros((120, 240, 3), np.uint8)
        cv2.circle(image, (120, 60), 20, (0, 0, 255), -1)
        self._jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        self.repeats = 0

    def add_sink(self, sink) -> None:
        self._sinks.append(sink)

    def _emit(self, event) -> None:
        for sink in self._sinks:
            start = time.perf_counter()
            sink(event)
            self.sink_seconds.append(time.perf_counter() - start)

    def run(self, stop_event: threading.Event | None = None):
        self._running = True
        start = time.perf_counter()
        try:
            for index in range(self.frames):
                if stop_event is not None and stop_event.is_set():
                    break
                due = start + index / self.fps
                time.sleep(max(0.0, due - time.perf_counter()))
                t = index / 30.0
                for n, yaw in enumerate((-170.0 + index, 40.0)):
                    self._emit(
                        TrackEvent(
                            frame_index=index,
                            frame_time_s=t,
                            entity_id=f"e{n}",
                            box=AngleBox(yaw=yaw, pitch=-5.0, width=20.0, height=40.0),
                            risk=0.9 if n == 0 else 0.1,
                            flagged=n == 0,
                            mask={"size": [240, 480], "counts": "P``3"} if n == 0 else None,  # an empty mask
                        )
                    )
                if index == self.alert_at or (self.alert_every and index % self.alert_every == 0):
                    self._last_alert = AlertEvent(
                        frame_index=index,
                        frame_time_s=t,
                        entity_id="e0",
                        sentence="Person behind you, 6 o'clock.",
                        clock_hour=6,
                        yaw=-170.0 + index,
                        pitch=-5.0,
                        distance_m=1.5,
                        risk=0.9,
                        urgent=True,
                    )
                    self._emit(self._last_alert)
                if index == self.alert_at + 5:
                    self._emit(
                        CaptionEvent(
                            frame_index=index,
                            frame_time_s=t,
                            entity_id="e0",
                            caption=Caption(appearance="a person in red", motion="reaches"),
                        )
                    )
                if index % 10 == 9:
                    self._emit(
                        StatsEvent(
                            frame_index=index,
                            frame_time_s=t,
                            fps=self.fps,
                            frames=index + 1,
                            stages={"reflex": StageLatency(p50_ms=1.0, p95_ms=2.0, count=index)},
                        )
                    )
                self._done = index + 1
        finally:
            self._running = False
        return {"frames": self._done}

    def status(self) -> ScriptedStatus:
        return ScriptedStatus(
            source="scripted",
            running=self._running,
            frames=self._done,
            fps=self.fps,
            dropped_frames=0,
            stages={"reflex": StageLatency(p50_ms=1.0, p95_ms=2.0, count=3)},
        )

    def latest_preview_jpeg(self, max_width: int = 960) -> bytes | None:
        return self._jpeg if self._done else None

    def update_settings(self, patch: dict) -> Settings:
        merged = _deep_merge(self.settings.model_dump(), patch)
        self.settings = Settings.model_validate(merged)
        return self.settings

    def repeat_last(self) -> AlertEvent | None:
        self.repeats += 1
        return self._last_alert


def _deep_merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for key, value in patch.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@pytest.fixture
def scripted_loop() -> ScriptedLoop:
    return ScriptedLoop()


@pytest.fixture
def make_scripted_loop() -> type[ScriptedLoop]:
    return ScriptedLoop


class ClipSource(FrameSource):
    """A rendered synthetic clip as a frame source (the real loop reads it like a file)."""

    def __init__(self, clip, realtime: bool = False) -> None:
        super().__init__(f"synthetic clip {clip.spec.video_id}", clip.spec.fps, "check")
        self._images = clip.frames
        self.height, self.width = clip.frames.shape[1:3]
        self.num_frames = len(clip.frames)
        self.realtime = realtime

    def frames(self):
        start = time.perf_counter()
        for index, image in enumerate(self._images):
            if self.realtime:
                time.sleep(max(0.0, start + index / self.fps - time.perf_counter()))
            yield Frame(index, index / self.fps, image, time.perf_counter())


@pytest.fixture(scope="session")
def serve_clip(synthetic_clip_factory):
    """6 s of the stealing scene at 480x240, 15 fps: long enough for a stable FPS reading."""
    return synthetic_clip_factory(kind="stealing", seed=7, cross_seam=True, bystanders=1, duration_s=6.0)


@pytest.fixture
def make_clip_loop():
    """A real `EdgeLoop` (reflex tier, no speech, no models) over a clip."""
    from vigil360.edge.loop import EdgeLoop

    def make(clip, realtime: bool = False, **settings_patch) -> EdgeLoop:
        settings = Settings.model_validate(_deep_merge(Settings().model_dump(), settings_patch))
        return EdgeLoop(ClipSource(clip, realtime), settings, track_masks=True)

    return make


def stalled_client(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then reads nothing until told to: a
    tiny receive buffer makes the server feel it within a few events, as a phone on a bad link
    would. Read what it got with `read_frames`."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    path = "/" + url.split("//")[1].split("/", 1)[1]
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def read_frames(sock: socket.socket, timeout: float) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the server's frames until the connection ends or goes quiet."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack(">H", data[at:at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack(">Q", data[at:at + 8])
            at += 8
        frames.append((opcode, data[at:at + length]))
        at += length
    return frames


@pytest.fixture(scope="session")
def raw_ws():
    """`raw_ws.stalled_client(url)` and `raw_ws.read_frames(sock, timeout)` for tests (fixtures, because
    several test folders have a conftest module and `import conftest` would be ambiguous)."""
    from types import SimpleNamespace

    return SimpleNamespace(stalled_client=stalled_client, read_frames=read_frames)


@pytest.fixture(scope="session")
def clip_source_class() -> type[ClipSource]:
    return ClipSource


class HubWatch:
    """Counts the hub's connects and disconnects (made on the server's thread) so a test can wait
    for them on a condition instead of polling `hub.stats()`."""

    def __init__(self, hub) -> None:
        self.connected = self.disconnected = 0
        self._changed = threading.Condition()
        connect, disconnect = hub.connect, hub.disconnect

        def counted_connect(subscription):
            client = connect(subscription)
            self._count("connected")
            return client

        def counted_disconnect(client) -> None:
            disconnect(client)
            self._count("disconnected")

        hub.connect, hub.disconnect = counted_connect, counted_disconnect

    def _count(self, name: str) -> None:
        with self._changed:
            setattr(self, name, getattr(self, name) + 1)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)


@pytest.fixture
def hub_watch() -> type[HubWatch]:
    """`hub_watch(app.state.hub)` before the clients connect."""
    return HubWatch
