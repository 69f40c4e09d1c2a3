"""No blind start (issue 14): after the background's bootstrap, a certain approach is flagged at
once; no blanket settle window silences the first seconds of a run."""

from __future__ import annotations

import numpy as np
from reflex_frames import HEIGHT, WIDTH, paint_block, textured_background

from vigil360.config import ReflexConfig, Settings
from vigil360.edge.reflex import ReflexPerception

FPS = 30.0
CAMERA_HEIGHT_M = 1.2
# The background model's own warm-up (the default: one second of frames buffered, no proposals).
BOOTSTRAP_S = 1.0


def _approach_right_after_bootstrap(start_frame: int, frames: int, speed_mps: float = 2.0) -> list[np.ndarray]:
    """A person-sized block walking straight at the wearer from 5 m at 5 o'clock, starting when
    the background model has just been seeded."""
    background = textured_background(5)
    out = [background.copy() for _ in range(start_frame)]
    deg_per_px = 180.0 / HEIGHT
    for i in range(frames):
        distance = 5.0 - speed_mps * i / FPS
        bottom = int(round(HEIGHT / 2 + np.degrees(np.arctan2(CAMERA_HEIGHT_M, distance)) / deg_per_px))
        top = int(round(HEIGHT / 2 - np.degrees(np.arctan2(0.55, distance)) / deg_per_px))
        half = max(2, int(round(np.degrees(np.arctan2(0.25, distance)) / deg_per_px)))
        frame = background.copy()
        paint_block(frame, WIDTH * (0.5 + 150.0 / 360.0), top, bottom, half, (30, 30, 220))
        out.append(frame)
    return out


def _first_flag_s(settings: Settings) -> float | None:
    tier = ReflexPerception(WIDTH, HEIGHT, settings)
    start = int(BOOTSTRAP_S * FPS) + 1
    for index, frame in enumerate(_approach_right_after_bootstrap(start, 45)):
        if any(track.flagged and track.reason == "approaching fast" for track in tier.process(frame, index / FPS)):
            return index / FPS
    return None


def test_a_certain_approach_is_flagged_within_the_old_settle_window():
    first = _first_flag_s(Settings())
    assert first is not None and first < 2.0, f"flagged at {first} s: the first 2 s are no longer blind"


def test_a_settle_window_if_asked_still_delays_flags():
    """The knob stays for who wants it (it is a setting, not a hidden constant)."""
    first = _first_flag_s(Settings(reflex=ReflexConfig(settle_s=2.0)))
    assert first is not None and first >= 2.0
