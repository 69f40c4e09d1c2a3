"""Auto-exposure steps and the background model (issue 12): a camera re-metering by +-20 % must neither
flood the foreground nor, seconds later, grow slow phantom regions; a mover during the step is still found.

The world is a real photograph (Debian blender-data HDRI) with sensor noise; the step is applied the
way a camera applies gain, clipping at 255.
"""

import cv2
import numpy as np
import pytest
from reflex_frames import paint_block

from vigil360.config import ReflexConfig
from vigil360.edge.reflex.motion import MotionProposer

W, H, FPS = 480, 240, 30.0
STEP_S = 2.0


@pytest.fixture(scope="module")
def photograph() -> np.ndarray:
    from vigil360.bench.real_imagery import RealImageryUnavailable, load_hdri

    try:
        return load_hdri("city", W)
    except RealImageryUnavailable as error:
        pytest.skip(f"real photographs unavailable: {error}")


def _camera(world: np.ndarray, t: float, step: float, noise: list[np.ndarray]) -> np.ndarray:
    """What the camera records at t: the step's gain ramps in over 0.15 s, then noise (sigma 2)."""
    gain = 1.0 + (step - 1.0) * float(np.clip((t - STEP_S) / 0.15, 0.0, 1.0))
    frame = cv2.scaleAdd(world.astype(np.float32), gain, noise[int(round(t * FPS)) % len(noise)])
    return np.clip(np.round(frame), 0, 255).astype(np.uint8)


def _noise(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 2.0, (H, W, 3)).astype(np.float32) for _ in range(7)]


@pytest.mark.parametrize("step", [1.2, 0.8])
def test_an_exposure_step_on_a_static_photograph_proposes_nothing_in_the_seconds_after(photograph, step):
    if step > 1:
        # The photograph's sky must clip under the brighter exposure, as a real sky does.
        assert np.mean(photograph.max(axis=2) * step >= 255) > 0.03
    proposer = MotionProposer(W, H, ReflexConfig(), camera_height_m=1.5)
    noise = _noise(0)
    found = []
    for index in range(int(6 * FPS)):
        t = index / FPS
        regions = proposer.propose(_camera(photograph, t, step, noise), 0.0, t)
        found += [(round(t, 2), round(r.area_deg2)) for r in regions]
    assert found == []


def test_a_mover_that_appears_during_the_step_is_proposed(photograph):
    proposer = MotionProposer(W, H, ReflexConfig(), camera_height_m=1.5)
    noise = _noise(1)
    hits = 0
    for index in range(int(3 * FPS)):
        t = index / FPS
        frame = _camera(photograph, t, 1.2, noise)
        if t >= STEP_S + 0.1:
            # A person-sized dark block at 3 o'clock, 3 m away, from 0.1 s into the step.
            paint_block(frame, 0.75 * W, 105, 150, 6, (40, 50, 60))
        regions = proposer.propose(frame, 0.0, t)
        if t >= STEP_S + 0.1:
            hits += any(abs(r.box.yaw - 90.0) < 5.0 for r in regions)
            assert cv2.countNonZero(proposer.last_foreground) < 0.05 * W * H
    assert hits >= 0.9 * (3 - STEP_S - 0.1) * FPS
