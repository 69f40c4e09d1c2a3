import numpy as np
import pytest
from reflex_frames import textured_background

from vigil360.edge.reflex.ego import EgoRotation, circular_shift, estimate_shift, horizon_band


@pytest.mark.parametrize("shift", [0.0, 3.0, -7.0, 2.5, -11.25, 150.0, -200.0])
def test_estimate_shift_recovers_a_circular_shift(shift: float) -> None:
    band = horizon_band(textured_background(1)[..., 1]).astype(np.float32)
    moved = circular_shift(band, shift)
    dx, sharpness = estimate_shift(band, moved)
    assert dx == pytest.approx(shift, abs=0.3)
    assert sharpness > 0.3


def test_estimate_shift_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        estimate_shift(np.zeros((10, 40)), np.zeros((10, 42)))


def test_accumulated_turn_does_not_drift() -> None:
    # 0.6 px per frame for 120 frames: chained frame-to-frame estimates would drift by pixels.
    gray = textured_background(2)[..., 0]
    ego = EgoRotation(gray.shape[1])
    for frame in range(120):
        offset = ego.update(circular_shift(gray, -0.6 * frame))
    true = (-0.6 * 119) % gray.shape[1]
    assert offset == pytest.approx(true, abs=0.5)
    assert ego.yaw_deg == pytest.approx(0.6 * 119 * 360 / gray.shape[1], abs=0.5)


def test_featureless_view_keeps_the_last_heading() -> None:
    ego = EgoRotation(64)
    flat = np.full((32, 64), 128, dtype=np.uint8)
    ego.update(flat)
    assert ego.update(flat) == 0.0


def test_a_slow_turn_of_a_fraction_of_a_pixel_per_frame_is_not_absorbed() -> None:
    # 0.02 px per frame (0.5 deg/s at 480 px and 30 fps): a peak interpolation biased toward whole
    # pixels reads every frame as no turn, the reference band drifts along, and the whole static
    # scene ends up misregistered by pixels.
    gray = textured_background(4)[..., 0]
    ego = EgoRotation(gray.shape[1])
    for frame in range(150):
        offset = ego.update(circular_shift(gray, -0.02 * frame))
    turned = 0.02 * 149
    assert (-offset) % gray.shape[1] == pytest.approx(turned, abs=0.3)
