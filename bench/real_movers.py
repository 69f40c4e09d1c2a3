"""Real pedestrians in a synthetic 360-degree clip: windows of OpenCV's `vtest.avi` pasted into the world.

vtest.avi is a raised, static perspective camera over a plaza with a dozen people walking (768 x 576,
10 fps). Each window shows the video from its own start time, anchored to the world at its own bearing
(it turns with the world as the wearer turns), so the movers in it are real people with real gait,
clothing and shadows, and the tier gets real clutter to cut up and track. Limits: a flat perspective
picture on the sphere (its people have no ground contact a range could be taken from), 10 fps motion
held over the clip's frames, and a standing or turning wearer only (no head tilt or parallax is applied).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vigil360.bench.real_imagery import vtest_path

VTEST_FPS = 10.0
VTEST_SECONDS = 79.5  # 795 frames


@dataclass(frozen=True)
class PastedVideo:
    frames: list[np.ndarray]  # BGR, all the window's size
    yaw_deg: float  # world bearing of the window's centre
    top_row: int

    def frame_at(self, t: float) -> np.ndarray:
        return self.frames[int(t * VTEST_FPS) % len(self.frames)]


def read_vtest(window_px: tuple[int, int], seconds: float, start_s: float = 0.0) -> list[np.ndarray]:
    """`seconds` of vtest.avi from `start_s`, each frame resized to `window_px` (width, height)."""
    capture = cv2.VideoCapture(str(vtest_path()))
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(start_s * VTEST_FPS))
    frames = []
    try:
        while len(frames) < max(1, int(np.ceil(seconds * VTEST_FPS))):
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, window_px, interpolation=cv2.INTER_AREA))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"{vtest_path()}: OpenCV decoded no frames (no decoder for this file?)")
    return frames


def plaza_windows(width: int, height: int, seconds: float, count: int = 3) -> list[PastedVideo]:
    """`count` windows spread round the horizon, each ~60 x 45 degrees (vtest's own field of view, roughly)
    from the horizon down, each from a different part of the video."""
    size = (width // 6, (width // 6) * 3 // 4)
    top = height // 2 - height // 36  # 5 degrees above the horizon
    return [PastedVideo(read_vtest(size, seconds, start_s=i * VTEST_SECONDS / count % (VTEST_SECONDS - seconds)),
                        yaw_deg=-180.0 + (i + 0.5) * 360.0 / count, top_row=top) for i in range(count)]


def paste_movers(frames: Iterable[np.ndarray], wearer_yaw: Sequence[float], fps: float,
                 windows: list[PastedVideo]) -> Iterator[np.ndarray]:
    """The clip's frames with the windows pasted at their world bearings (less the wearer's turn)."""
    for index, image in enumerate(frames):
        t = index / fps
        width = image.shape[1]
        for window in windows:
            picture = window.frame_at(t)
            rows, cols = picture.shape[:2]
            yaw = window.yaw_deg - wearer_yaw[index]
            left = int(round((yaw / 360.0 + 0.5) * width - cols / 2.0))
            columns = (left + np.arange(cols)) % width
            image[window.top_row: window.top_row + rows, columns] = picture
        yield image
