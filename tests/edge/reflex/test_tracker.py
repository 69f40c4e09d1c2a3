"""Association in angles: the range gate between a track and a region."""

import numpy as np

from vigil360.config import ReflexConfig
from vigil360.edge.geometry import Distance
from vigil360.edge.reflex.motion import Region
from vigil360.edge.reflex.tracker import AngleTracker
from vigil360.schema import AngleBox

FPS = 30.0


def region(yaw: float, metres: float, sigma: float, width: float = 4.0) -> Region:
    box = AngleBox(yaw=yaw, pitch=-2.0, width=width, height=8.0)
    return Region(np.zeros((2, 2), dtype=bool), box, width * 8.0, -6.0, 2.0, Distance(metres, sigma))


def follow(ranges: list[tuple[float, float]], yaw: float = 30.0) -> set[int]:
    tracker = AngleTracker(ReflexConfig(min_track_s=0))
    ids = set()
    for frame, (metres, sigma) in enumerate(ranges):
        tracks = tracker.step([region(yaw, metres, sigma)], frame / FPS)
        ids |= {track.track_id for track in tracks if track.region is not None}
    return ids


def test_a_far_entity_whose_contact_jumps_by_its_own_error_keeps_its_track() -> None:
    # A bike at ~15 m: one contact row is ~3 m there, and its wheel comes and goes in the mask.
    assert len(follow([(20.3, 4.8), (20.3, 4.8), (9.6, 1.3), (10.7, 1.6), (9.6, 1.3)])) == 1


def test_a_near_track_is_not_handed_to_a_region_far_behind_it() -> None:
    # The same bearing, but 3 m then 8 m with sub-metre errors: that is someone else.
    assert len(follow([(3.0, 0.3), (3.0, 0.3), (8.0, 0.9)])) == 2
