"""Real pedestrians pasted into synthetic clips (`bench.real_movers`)."""

import numpy as np
import pytest

from vigil360.bench.real_movers import PastedVideo, paste_movers, plaza_windows


def test_a_window_stays_put_in_the_world_as_the_wearer_turns() -> None:
    window = PastedVideo([np.full((10, 20, 3), 255, np.uint8)], yaw_deg=0.0, top_row=50)
    frames = [np.zeros((100, 200, 3), np.uint8) for _ in range(2)]
    # Turned 90 degrees right: what was ahead is now at 9 o'clock, a quarter of the width to the left.
    pasted = list(paste_movers(frames, [0.0, 90.0], 30.0, [window]))
    ahead = np.flatnonzero(pasted[0][55, :, 0])
    left = np.flatnonzero(pasted[1][55, :, 0])
    assert (ahead.min(), ahead.max()) == (90, 109)
    assert (left.min(), left.max()) == (40, 59)
    # Across the seam the window wraps round.
    wrapped = next(paste_movers([np.zeros((100, 200, 3), np.uint8)], [180.0], 30.0, [window]))
    assert set(np.flatnonzero(wrapped[55, :, 0])) == {*range(0, 10), *range(190, 200)}


def test_plaza_windows_hold_real_video_that_moves() -> None:
    from vigil360.bench.real_imagery import RealImageryUnavailable

    try:
        windows = plaza_windows(480, 240, seconds=1.0)
    except RealImageryUnavailable as error:
        pytest.skip(f"vtest.avi unavailable: {error}")
    assert len(windows) == 3 and len({w.yaw_deg for w in windows}) == 3
    first = windows[0]
    assert first.frames[0].shape == (60, 80, 3) and len(first.frames) == 10
    # People walk: consecutive seconds differ somewhere, and the windows show different moments.
    assert np.abs(first.frame_at(0.0).astype(int) - first.frame_at(0.9).astype(int)).max() > 50
    assert not np.array_equal(windows[0].frames[0], windows[1].frames[0])
