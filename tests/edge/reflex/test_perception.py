"""The reflex tier end to end: its contract, the issue's acceptance checks, generator clips."""

import numpy as np
import pytest
from reflex_frames import HEIGHT, WIDTH, paint_block, textured_background

from vigil360 import masks
from vigil360.config import ReflexConfig, Settings
from vigil360.edge.reflex import ReflexPerception, ReflexTrack
from vigil360.edge.reflex.ego import circular_shift

FPS = 30.0


def run(frames, tier: ReflexPerception | None = None, fps: float = FPS) -> list[list[ReflexTrack]]:
    tier = tier or ReflexPerception(frames[0].shape[1], frames[0].shape[0])
    return [tier.process(frame, index / fps) for index, frame in enumerate(frames)]


# --- contract and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((HEIGHT, WIDTH), dtype=np.uint8), "shape"),
        (np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8), "shape"),
        (np.zeros((HEIGHT // 2, WIDTH, 3), dtype=np.uint8), "shape"),
        (np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32), "uint8"),
    ],
)
def test_a_corrupt_frame_is_a_clear_error(frame: np.ndarray, message: str) -> None:
    tier = ReflexPerception(WIDTH, HEIGHT)
    with pytest.raises(ValueError, match=message):
        tier.process(frame, 0.0)


def test_a_non_array_frame_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="numpy array"):
        ReflexPerception(WIDTH, HEIGHT).process([[0]], 0.0)  # type: ignore[arg-type]


def test_timestamps_must_increase() -> None:
    tier = ReflexPerception(WIDTH, HEIGHT)
    frame = textured_background()
    tier.process(frame, 1.0)
    with pytest.raises(ValueError, match="timestamps must increase"):
        tier.process(frame, 1.0)


def test_frames_must_be_equirectangular() -> None:
    with pytest.raises(ValueError, match="2:1"):
        ReflexPerception(300, 300)


def test_settings_section_is_used() -> None:
    tier = ReflexPerception(1920, 960, Settings(reflex=ReflexConfig(work_width=320)))
    assert (tier.work_width, tier.work_height) == (320, 160)


# --- acceptance: seam, ego-rotation, looming --------------------------------------------------


def moving_block_frames(start_x: float, step_px: float, count: int, settle: int = 35) -> list[np.ndarray]:
    background = textured_background(5)
    frames = [background.copy() for _ in range(settle)]
    for i in range(count):
        frame = background.copy()
        paint_block(frame, start_x + step_px * i, y_top=100, y_bottom=160, half_width=6, colour=(30, 30, 220))
        frames.append(frame)
    return frames


def test_an_entity_crossing_the_seam_keeps_its_id() -> None:
    # From 30 columns left of the seam to 30 columns past it, 2 px (1.5 deg) per frame.
    results = run(moving_block_frames(WIDTH - 30, 2.0, 30))[35:]
    ids = {track.track_id for tracks in results for track in tracks}
    assert len(ids) == 1
    yaws = [tracks[0].box.yaw for tracks in results if tracks]
    assert max(yaws) > 170 and min(yaws) < -170  # it really went across


def test_an_entity_keeps_its_id_through_a_short_occlusion() -> None:
    frames = moving_block_frames(100, 2.0, 40)
    background = frames[0]
    for index in range(55, 59):  # 4 frames hidden (a pillar in front of it)
        frames[index] = background.copy()
    results = run(frames)
    ids = [track.track_id for tracks in results[35:] for track in tracks if track.mask is not None]
    assert len(ids) > 30 and len(set(ids)) == 1
    assert any(track.mask is None for tracks in results[55:59] for track in tracks)  # it coasted


@pytest.mark.parametrize("turn_px_per_frame", [0.7, -1.6])
def test_a_turning_wearer_in_a_static_scene_flags_nothing(turn_px_per_frame: float) -> None:
    # 0.7 px/frame at 480 wide is 16 deg/s; 1.6 px/frame is 36 deg/s.
    background = textured_background(6)
    frames = [circular_shift(background, -turn_px_per_frame * i) for i in range(90)]
    results = run(frames)
    assert not any(track.flagged for tracks in results for track in tracks)
    assert sum(len(tracks) for tracks in results[30:]) <= 3  # at most a stray blip, never a track that lasts


def test_a_looming_object_has_a_finite_decreasing_tau() -> None:
    # An object 1.8 m tall centred on the horizon, closing from 8 m at 1.5 m/s, seen straight ahead.
    background = textured_background(7)
    frames = [background.copy() for _ in range(40)]
    for i in range(60):
        distance = 8.0 - 1.5 * i / FPS
        half_px = np.degrees(np.arctan(0.9 / distance)) * WIDTH / 360.0
        frame = background.copy()
        half = int(round(half_px))
        paint_block(frame, WIDTH / 2, HEIGHT // 2 - half, HEIGHT // 2 + half, max(2, half // 3), (40, 200, 40))
        frames.append(frame)
    results = run(frames)
    taus = [tracks[0].tau_s for tracks in results[70:] if len(tracks) == 1 and tracks[0].tau_s is not None]
    assert len(taus) >= 20
    assert all(np.isfinite(taus))
    first, last = np.median(taus[:5]), np.median(taus[-5:])
    assert last < first
    true_remaining = (8.0 - 1.5 * 59 / FPS) / 1.5
    assert last == pytest.approx(true_remaining, abs=1.0)


def test_mask_rle_upsamples_to_the_frame_size() -> None:
    results = run(moving_block_frames(200, 2.0, 20))
    track = results[-1][0]
    rle = track.mask_rle(960, 480)
    assert tuple(rle.size) == (480, 960)
    assert masks.area(rle) == pytest.approx(4 * track.mask.sum(), rel=0.01)
    assert track.role == "perpetrator" and track.whom == "you"


def test_a_flag_needs_two_frames_that_saw_the_track() -> None:
    """A coasting track's risk is its last observations' re-read: time passing is no evidence. One observed
    frame at high risk, then coasting past `confirm_s`: no flag until a second frame sees the track."""
    from collections import deque

    from vigil360.edge.geometry import Distance
    from vigil360.edge.reflex.appearance import Appearance
    from vigil360.edge.reflex.motion import Region
    from vigil360.edge.reflex.risk import RiskAssessment
    from vigil360.edge.reflex.tracker import Observation, Track
    from vigil360.schema import AngleBox

    tier = ReflexPerception(WIDTH, HEIGHT)
    box = AngleBox(yaw=170.0, pitch=-5.0, width=8.0, height=20.0)
    region = Region(np.zeros((tier.work_height, tier.work_width), bool), box, 100.0, -15.0, 5.0)
    high = RiskAssessment(0.9, "approaching fast", 0.8, 2.0, 1.0, 0.5)
    track = Track(1, 0.0, deque([Observation(0.0, box, -15.0, 5.0, Distance(4.0, 0.2))]), region)
    seen = [True] + [False] * 9 + [True]
    flags = []
    tier._first_time = 0.0
    for index, observed in enumerate(seen):
        tier._last_time = index / FPS
        track.region = region if observed else None
        flags.append(tier._result(track, Appearance("unknown", "unknown", "unknown", "person"), Distance(4.0, 0.2),
                                  high).flagged)
    assert flags == [False] * 10 + [True]
