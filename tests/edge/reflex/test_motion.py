import itertools

import numpy as np
import pytest
from reflex_frames import HEIGHT, WIDTH, paint_block, textured_background

from vigil360.config import ReflexConfig
from vigil360.edge.reflex.motion import MotionProposer, seam_components, stack_vertical, wrap_pad


def test_wrap_pad_takes_columns_from_the_other_side() -> None:
    image = np.arange(12).reshape(2, 6)
    padded = wrap_pad(image, 2)
    assert padded[0].tolist() == [4, 5, 0, 1, 2, 3, 4, 5, 0, 1]


def test_components_touching_both_edges_are_one() -> None:
    mask = np.zeros((20, 40), dtype=np.uint8)
    mask[5:10, 0:3] = 1
    mask[6:12, 37:40] = 1
    mask[15:18, 18:22] = 1  # a separate blob
    count, labels = seam_components(mask)
    assert count == 3  # background + two components
    assert labels[5, 0] == labels[6, 39] != labels[16, 20]


def test_diagonal_contact_across_the_seam_joins() -> None:
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[4, 0] = 1
    mask[5, 19] = 1
    count, labels = seam_components(mask)
    assert count == 2 and labels[4, 0] == labels[5, 19]


def test_head_and_feet_of_one_person_are_stacked() -> None:
    head = np.zeros((HEIGHT, WIDTH), dtype=bool)
    feet = np.zeros_like(head)
    other = np.zeros_like(head)
    # Someone ~3 m away: feet at pitch ~-22 deg (row ~150), head ~+10 deg (row ~106); torso missing.
    head[104:110, 200:206] = True
    feet[140:150, 199:207] = True
    other[140:150, 300:306] = True
    merged = stack_vertical([head, feet, other], camera_height_m=1.2, max_height_m=2.2)
    assert len(merged) == 2
    assert any(m[106, 202] and m[145, 202] for m in merged)


def test_a_block_moving_across_the_seam_is_one_region() -> None:
    proposer = MotionProposer(WIDTH, HEIGHT, ReflexConfig(bootstrap_s=0.1), camera_height_m=1.2)
    clock = itertools.count(0.0, 1 / 30)
    background = textured_background(3)
    for _ in range(10):  # the empty scene first, so the block leaves no ghost where it starts
        proposer.propose(background, 0.0, next(clock))
    regions = []
    for frame in range(16):
        image = background.copy()
        paint_block(image, x_centre=WIDTH - 10 + frame, y_top=100, y_bottom=150, half_width=6,
                    colour=(20, 20, 230))
        regions = proposer.propose(image, 0.0, next(clock))
    # The block now straddles the seam (columns 479 and 0..11): still one region, a narrow box
    # centred just past directly-behind, not a 360-degree-wide one.
    assert len(regions) == 1
    assert regions[0].mask[120, WIDTH - 1] and regions[0].mask[120, 5]
    assert regions[0].box.width < 20
    assert abs(regions[0].box.yaw) > 170


def test_thin_legs_attached_to_a_body_are_kept() -> None:
    # One-pixel-wide structures vanish in a plain 3x3 opening: far legs, a bike's wheel. Losing the
    # legs lifts the ground contact, which far away is metres of range.
    proposer = MotionProposer(WIDTH, HEIGHT, ReflexConfig(bootstrap_s=0.1), camera_height_m=1.2)
    clock = itertools.count(0.0, 1 / 30)
    background = textured_background(5)
    for _ in range(10):
        proposer.propose(background, 0.0, next(clock))
    image = background.copy()
    paint_block(image, x_centre=200, y_top=100, y_bottom=112, half_width=3, colour=(20, 20, 230))
    # A leg covering a fifth of a pixel column, as far legs and a bike's wheel do after the area
    # downscale: a faint one-pixel line that a plain 3x3 opening removes.
    leg = np.array([20, 20, 230], dtype=np.float64)
    image[112:118, 200] = (0.2 * leg + 0.8 * image[112:118, 200]).astype(np.uint8)
    regions = proposer.propose(image, 0.0, next(clock))
    body = [region for region in regions if region.mask[105, 200]]
    assert len(body) == 1
    assert body[0].mask[116, 200]


def test_the_bearing_of_a_merged_region_is_where_its_range_comes_from() -> None:
    # A passer-by at ~4 m (contact row 142) in front of the end of a car ~13 m away (row 127): one
    # region whose box centre sits over the car, while its range - the lowest row - is the
    # passer-by's. The ground position must pair that range with the passer-by's bearing.
    proposer = MotionProposer(WIDTH, HEIGHT, ReflexConfig(bootstrap_s=0.1), camera_height_m=1.2)
    clock = itertools.count(0.0, 1 / 30)
    background = textured_background(6)
    for _ in range(10):
        proposer.propose(background, 0.0, next(clock))
    image = background.copy()
    paint_block(image, x_centre=200, y_top=118, y_bottom=127, half_width=13, colour=(30, 200, 30))
    paint_block(image, x_centre=214, y_top=110, y_bottom=143, half_width=4, colour=(20, 20, 230))
    (region,) = proposer.propose(image, 0.0, next(clock))
    passer_yaw = (214 - WIDTH / 2) * 360 / WIDTH
    assert abs(region.box.yaw - passer_yaw) > 5
    assert region.ground_yaw == pytest.approx(passer_yaw, abs=1.5)


def _upright(mask: np.ndarray, yaw_deg: float, range_m: float, camera_m: float, width_m: float,
             bottom_m: float = 0.0, top_m: float = 1.7) -> None:
    """Paint something standing `range_m` away (its lowest and highest points `bottom_m`, `top_m`
    above the ground) into an equirect mask - geometry only, no renderer."""
    from vigil360.edge.geometry import angles_to_pixel

    half = np.degrees(np.arctan2(width_m / 2.0, range_m))
    low, high = (np.degrees(np.arctan2(z - camera_m, range_m)) for z in (bottom_m, top_m))
    (x0, x1), (y0, y1) = angles_to_pixel(np.array([yaw_deg - half, yaw_deg + half]), np.array([high, low]),
                                         mask.shape[1], mask.shape[0])
    mask[int(round(y0)):int(round(y1)) + 1, int(round(x0)):int(round(x1)) + 1] = 255


def test_entities_at_different_ranges_on_one_bearing_stay_apart() -> None:
    """A walker at 4 m and a cyclist at 15 m, 1.7 deg apart (inside the 3 deg merge gap): two regions."""
    camera = 1.2
    proposer = MotionProposer(480, 240, ReflexConfig(), camera_height_m=camera)
    mask = np.zeros((240, 480), np.uint8)
    _upright(mask, 0.0, 4.0, camera, 0.5)
    _upright(mask, 6.5, 15.0, camera, 0.6)
    regions = sorted(proposer.regions(mask), key=lambda r: r.box.yaw)
    assert len(regions) == 2
    ranges = [camera / np.tan(np.radians(-r.contact_pitch)) for r in regions]
    assert ranges[0] == pytest.approx(4.0, rel=0.15) and ranges[1] == pytest.approx(15.0, rel=0.3)


def test_a_bag_split_off_someone_near_stays_with_them() -> None:
    """A bag held at the side (0.6-0.9 m above the ground, 2 deg from the body) has a low point that
    implies a far range, but not an upright height there: one region."""
    camera = 1.2
    proposer = MotionProposer(480, 240, ReflexConfig(), camera_height_m=camera)
    mask = np.zeros((240, 480), np.uint8)
    _upright(mask, 0.0, 3.0, camera, 0.5)
    _upright(mask, 8.0, 3.0, camera, 0.3, bottom_m=0.6, top_m=0.9)
    assert len(proposer.regions(mask)) == 1


@pytest.mark.parametrize("top_row", [0, 3, 40])
def test_regions_cleaned_on_the_foregrounds_own_rows_are_the_whole_frames(top_row: int) -> None:
    """`regions` cleans and closes only the rows round the foreground: a body cut by a gap the closing bridges,
    next to the crop's edge (and at the frame's top), a lone speck, legs a pixel wide, and something across the
    seam must come out as they do when a far single pixel (gone after the opening) makes the crop the whole frame."""
    config = ReflexConfig()
    raw = np.zeros((240, 480), np.uint8)
    raw[top_row:top_row + 12, 100:108] = 255  # a torso ...
    raw[top_row + 14:top_row + 24, 101:107] = 255  # ... and its legs, two rows below: one region after closing
    raw[top_row + 24:top_row + 30, 103] = 255  # a one-pixel-wide shin, attached: kept by the reconstruction
    raw[top_row + 5, 200] = 255  # a speck: opened away
    raw[top_row:top_row + 2, 300:320] = 255  # a strip two rows high on the top row: opened away too
    raw[top_row + 2:top_row + 20, 474:480] = 255
    raw[top_row + 2:top_row + 20, 0:5] = 255  # one block across the seam
    whole = raw.copy()
    whole[239, 300] = 255
    cropped = MotionProposer(480, 240, config, camera_height_m=1.5).regions(raw)
    reference = MotionProposer(480, 240, config, camera_height_m=1.5).regions(whole)
    assert len(cropped) == len(reference) == 2
    for a, b in zip(cropped, reference, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (a.box, a.area_deg2, a.contact_pitch) == (b.box, b.area_deg2, b.contact_pitch)
        assert a.contact_yaw == b.contact_yaw


def test_a_region_reaching_a_pole_is_clipped() -> None:
    """Foreground that runs into the nadir (the ground under the wearer, their own body, a background model
    gone stale as they set off) has a box that ends at the pole, not at an entity's edge; an upright
    walker at 4 m does not reach it."""
    camera = 1.2
    proposer = MotionProposer(480, 240, ReflexConfig(), camera_height_m=camera)
    walker = np.zeros((240, 480), np.uint8)
    _upright(walker, 0.0, 4.0, camera, 0.5)
    nadir = np.zeros((240, 480), np.uint8)
    nadir[200:, 100:140] = 255
    assert [region.clipped for region in proposer.regions(walker)] == [False]
    assert [region.clipped for region in proposer.regions(nadir)] == [True]
