"""A wearer who stands, then sets off (issue 12, the mixed wearer).

While standing, movers come from a background model learnt where the wearer stood; once they walk,
from the residual motion. The smoothed speed that switches between the two lags the real start by
half a second or more, and over that stretch every near edge slides with parallax in the background
model. A static street (the generator's procedural street, used as a world only) must give no
track at all over that stretch.
"""

import numpy as np
import pytest

from vigil360.bench.synthetic.street import Street
from vigil360.config import Settings
from vigil360.edge.reflex import ReflexPerception
from vigil360.edge.reflex import perception as reflex_perception

W, H = 480, 240
FPS = 15.0
STAND_S, WALK_S = 1.6, 1.4
SPEED_MPS = 1.2


def _set_off(street: Street) -> list[tuple[float, bool, int]]:
    """(time, tier walking?, tracks reported) per frame: standing for STAND_S, then walking straight on."""
    rng = np.random.default_rng(0)
    tier = ReflexPerception(W, H, Settings())
    rows = []
    for index in range(int((STAND_S + WALK_S) * FPS)):
        t = index / FPS
        z = SPEED_MPS * max(t - STAND_S, 0.0)
        frame = street.render(W, H, 0.0, z, 1.5, 0.0).astype(np.int16)
        frame = np.clip(frame + rng.normal(0.0, 2.0, frame.shape), 0, 255).astype(np.uint8)
        tracks = tier.process(frame, t)
        rows.append((t, tier.walking, len(tracks)))
    return rows


@pytest.fixture(scope="module")
def street() -> Street:
    return Street.draw(np.random.default_rng(4))


@pytest.mark.slow
def test_setting_off_from_a_standstill_tracks_nothing_in_a_static_street(street):
    rows = _set_off(street)
    stale = [(t, count) for t, walking, count in rows if t > STAND_S and not walking]
    assert stale, "the switch to walking came at once: nothing here tests the stale background model"
    assert [count for _, count in stale if count] == []
    assert rows[-1][1], "the tier never recognised the walk"


@pytest.mark.slow
def test_without_the_guards_the_stale_background_model_tracks_parallax(street, monkeypatch):
    """The fault the guards exist for, injected: their thresholds out of reach."""
    monkeypatch.setattr(reflex_perception, "_SET_OFF_MPS", float("inf"))
    monkeypatch.setattr(reflex_perception, "_FLOODED_SHARE", float("inf"))
    rows = _set_off(street)
    assert any(count for t, walking, count in rows if t > STAND_S and not walking)
