"""The walking wearer's moving-pixel mask (`edge/reflex/residual.py`): where flow can be trusted.

Real imagery only: a blender-data photograph's sky (dense flow is unconstrained on it, so its errors
pass any tolerance) and real pedestrians from opencv-doc's vtest.avi, at the sizes the tier sees them.
The residual itself is forced to "moving" everywhere, so what is asserted is the mask's own gate.
"""

import cv2
import numpy as np
import pytest

from vigil360.edge.reflex.ego_motion import Residual, min_eigenvalues
from vigil360.edge.reflex.residual import ResidualForeground, textured

W, H = 480, 240


def _rows(low_deg: float, high_deg: float) -> slice:
    return slice(int((90 - high_deg) / 180 * H), int((90 - low_deg) / 180 * H))


def _mask_over(frames: list[np.ndarray], gated: bool) -> np.ndarray:
    """The mask after three steps whose residual says "moving" at every pixel."""
    foreground = ResidualForeground(W, H)
    everywhere = Residual(np.ones((H, W), np.float32), 0.1)
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        mask = foreground.update(everywhere, texture=textured(min_eigenvalues(gray)) if gated else None)
    return mask > 0


@pytest.fixture(scope="module")
def sunrise_with_noise() -> list[np.ndarray]:
    from vigil360.bench.real_imagery import RealImageryUnavailable, load_hdri

    try:
        photograph = load_hdri("sunrise", W).astype(np.float32)
    except RealImageryUnavailable as error:
        pytest.skip(f"real photographs unavailable: {error}")
    rng = np.random.default_rng(5)
    # Sensor noise (sigma 2 grey levels), fresh each frame, as a real camera gives it.
    return [np.clip(np.round(photograph + rng.normal(0.0, 2.0, photograph.shape)), 0, 255).astype(np.uint8)
            for _ in range(3)]


def test_a_residual_of_the_band_rows_only_gives_the_same_mask_as_a_whole_frame_one():
    rng = np.random.default_rng(3)
    whole = [Residual(rng.normal(0.0, 1.0, (H, W)).astype(np.float32), 0.1) for _ in range(3)]
    full, banded = ResidualForeground(W, H), ResidualForeground(W, H)
    r0, r1 = banded.rows
    def pitch(row: int) -> float:
        return (H / 2.0 - row) * 180.0 / H

    # The band is the -40...+45 deg rows: the poles are left out.
    assert pitch(r0) <= 45.0 and pitch(r0 - 1) > 45.0
    assert pitch(r1 - 1) >= -40.0 and pitch(r1) < -40.0
    for residual in whole:
        band = Residual(residual.magnitude[r0 - 2:r1 + 1], 0.1, first_row=r0 - 2)
        np.testing.assert_array_equal(banded.update(band), full.update(residual))
    with pytest.raises(ValueError, match="does not cover"):
        banded.update(Residual(whole[0].magnitude[r0 + 1:r1], 0.1, first_row=r0 + 1))


def test_a_clear_sky_is_never_moving_however_its_flow_reads(sunrise_with_noise):
    sky = _rows(25.0, 45.0)
    assert _mask_over(sunrise_with_noise, gated=False)[sky].mean() == 1.0  # the gate is what keeps it out
    assert _mask_over(sunrise_with_noise, gated=True)[sky].mean() < 0.05


def test_real_pedestrians_keep_their_moving_pixels():
    """vtest.avi's walkers (foreground against the video's median) pasted at the horizon at an eighth and a
    quarter of their size (a person ~15-50 working pixels tall), and 40 % darker: nearly every pixel stays."""
    from vigil360.bench.real_imagery import RealImageryUnavailable
    from vigil360.bench.real_movers import read_vtest

    try:
        video = read_vtest((768, 576), seconds=8.0)
    except RealImageryUnavailable as error:
        pytest.skip(f"vtest.avi unavailable: {error}")
    background = np.median(np.stack(video[::8]), axis=0).astype(np.uint8)
    frame = video[40]
    walkers = (cv2.absdiff(frame, background).max(axis=2) > 40).astype(np.uint8)
    for scale in (0.125, 0.25):
        for gain in (1.0, 0.6):
            size = (int(768 * scale), int(576 * scale))
            patch = cv2.resize(cv2.convertScaleAbs(frame, alpha=gain), size, interpolation=cv2.INTER_AREA)
            people = cv2.resize(walkers, size, interpolation=cv2.INTER_AREA) > 0
            world = np.full((H, W, 3), 128, np.uint8)
            top, left = H // 2 - size[1] // 2, W // 2 - size[0] // 2
            world[top:top + size[1], left:left + size[0]] = patch
            kept = _mask_over([world] * 3, gated=True)[top:top + size[1], left:left + size[0]]
            assert people.sum() > 20
            assert kept[people].mean() >= 0.99, (scale, gain)


@pytest.mark.parametrize(("low_deg", "high_deg", "clipped"), [(38.0, 50.0, True), (-50.0, -30.0, True),
                                                               (-10.0, 20.0, False)])
def test_a_region_the_band_cuts_is_marked_clipped(low_deg, high_deg, clipped):
    """A patch moving across the band's top or bottom edge keeps only its part inside the band; its box ends
    where the band does, so the region must say so (its size is not the entity's)."""
    from vigil360.config import ReflexConfig
    from vigil360.edge.reflex.motion import MotionProposer

    moving = np.zeros((H, W), np.float32)
    moving[_rows(low_deg, high_deg), 200:240] = 1.0
    foreground = ResidualForeground(W, H)
    for _ in range(3):
        mask = foreground.update(Residual(moving, 0.1))
    regions = MotionProposer(W, H, ReflexConfig(), camera_height_m=1.5).regions(mask, foreground.rows)
    assert [region.clipped for region in regions] == [clipped]
