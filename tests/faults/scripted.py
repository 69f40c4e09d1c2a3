"""A perception stand-in and a blank video for fault tests: the loop's faults do not depend on what
the reflex tier sees, so each test gets alerts on a known schedule, in milliseconds.

`ScriptedPerception` has `ReflexPerception`'s constructor, so a subprocess can swap it in before
calling the real CLI: a new flagged entity every 10 frames from frame 5, each for 10 frames, with
a mask (so the recorder writes a mask line per frame) - about one alert every 10 frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil360.edge.geometry import Distance
from vigil360.edge.reflex.appearance import Appearance
from vigil360.edge.reflex.perception import ReflexTrack
from vigil360.edge.source import Frame, FrameSource
from vigil360.schema import AngleBox

WIDTH, HEIGHT, FPS = 480, 240, 15.0


class ScriptedPerception:
    def __init__(self, width: int = WIDTH, height: int = HEIGHT, settings=None) -> None:
        self.index = -1
        self.mask_shape = (height // 4, width // 4)

    def process(self, frame: np.ndarray, timestamp_s: float) -> list[ReflexTrack]:
        self.index += 1
        if self.index < 5:
            return []
        track_id = 1 + (self.index - 5) // 10
        mask = np.zeros(self.mask_shape, bool)
        mask[20:40, 10 + 7 * track_id % 90:20 + 7 * track_id % 90] = True
        yaw = float((track_id * 47) % 360 - 180)
        return [ReflexTrack(
            track_id=track_id, box=AngleBox(yaw=yaw, pitch=-10.0, width=15.0, height=30.0), mask=mask,
            distance=Distance(2.0, 0.3), risk=0.7, reason="approaching fast", flagged=True, tau_s=None,
            appearance=Appearance("red", "blue", "person-sized", "person"), first_seen_s=timestamp_s,
            age_frames=10,
        )]


class BlankSource(FrameSource):
    def __init__(self, frames: int = 60) -> None:
        super().__init__("blank frames", FPS, "check")
        self.width, self.height, self.num_frames = WIDTH, HEIGHT, frames
        self.closed = False

    def frames(self):
        import time

        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for index in range(self.num_frames):
            yield Frame(index, index / self.fps, image, time.perf_counter())

    def close(self) -> None:
        self.closed = True


def write_blank_video(path: Path, frames: int = 60) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path
