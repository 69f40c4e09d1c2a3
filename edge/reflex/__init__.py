"""Reflex perception: a weight-free tier that finds, tracks and scores movers on every frame.

    tier = ReflexPerception(width=1920, height=960, settings=Settings())
    tracks = tier.process(frame_bgr, timestamp_s)   # list[ReflexTrack]
"""

from vigil360.edge.reflex.appearance import Appearance
from vigil360.edge.reflex.perception import STAGES, ReflexPerception, ReflexTrack

__all__ = ["STAGES", "Appearance", "ReflexPerception", "ReflexTrack"]
