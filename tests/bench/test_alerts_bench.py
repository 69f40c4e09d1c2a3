"""`vigil360 bench alerts` end to end on one small approach clip: the loop's utterances, played
in simulated time with real espeak-ng audio, and the figures the bench derives from them."""

from __future__ import annotations

import numpy as np
import pytest

from vigil360.bench.alerts_bench import _actors, run_loop, score_clip
from vigil360.bench.speech_sim import simulate
from vigil360.bench.synthetic import ScenarioSpec, ground_truth, iter_frames
from vigil360.config import Settings
from vigil360.edge.speech import build_synthesizer


@pytest.mark.slow
def test_an_approach_is_heard_in_time(tmp_path):
    spec = ScenarioSpec(kind="stealing", seed=7, width=480, height=240, duration_s=5.0, cross_seam=True, bystanders=0)
    settings = Settings()
    synth = build_synthesizer(settings.speech)
    _, scenario = ground_truth(spec)
    decisions, record, looks = run_loop(iter_frames(spec), spec.fps, spec.width, spec.height, spec.video_id,
                                        settings, tmp_path, synth)
    assert decisions and record.schema_version == "1.1"
    assert [(a.entity_id, a.frame) for a in record.alerts] == [
        (d.utterance.entity_id, round(d.time_s * spec.fps)) for d in decisions], "one alert line per utterance"
    played, queue = simulate(decisions, synth, settings.speech)
    clip = score_clip(spec.video_id, spec.kind, spec.fps, spec.num_frames, _actors(scenario), decisions, record,
                      played)
    (thief,) = [e for e in clip.entities if e.actor_id == "perpetrator"]
    assert thief.earcon_after_s < thief.direction_onset_after_s < thief.direction_heard_after_s < 1.5
    assert clip.urgent_earcon_after_s and all(delay >= 0 for delay in clip.urgent_earcon_after_s)
    heard_s = thief.decision_s + thief.direction_heard_after_s
    assert thief.heard_before_within == (heard_s < thief.within_s)
    truth = scenario.actor("perpetrator")
    assert thief.distance_when_heard_m == truth.distance_m[truth.frames.index(round(heard_s * spec.fps))]
    assert all(len(set(phrases)) == 1 for phrases in looks.values()), "one appearance per entity"


def test_composite_keeps_the_nearer_actor_in_front(monkeypatch):
    # Two overlapping actors: A's (2 m) and B's (6 m, then 1 m). B is pasted only where it is nearer.
    from types import SimpleNamespace

    import vigil360.bench.synthetic as synthetic
    from vigil360 import masks
    from vigil360.bench.alerts_bench import _composite

    height, width = 8, 16
    left, right = np.zeros((height, width), bool), np.zeros((height, width), bool)
    left[2:6, 2:8], right[2:6, 5:11] = True, True  # overlap: columns 5..7

    def actor(mask, distances):
        frames = list(range(len(distances)))
        return SimpleNamespace(actor_id="perpetrator", frames=frames, distance_m=distances,
                               masks={f: masks.encode(mask) for f in frames})

    scenes = {"a": SimpleNamespace(actors=[actor(left, [2.0, 2.0])]),
              "b": SimpleNamespace(actors=[actor(right, [6.0, 1.0])])}
    colours = {"a": 50, "b": 200}
    monkeypatch.setattr(synthetic, "ground_truth", lambda spec: (None, scenes[spec]))
    monkeypatch.setattr(synthetic, "iter_frames", lambda spec: (np.full((height, width, 3), colours[spec], np.uint8)
                                                                for _ in range(2)))
    seen: dict = {}
    far, near = list(_composite("a", "b", 0, seen))
    assert (far[3, 6] == 50).all(), "B behind A: A's pixels stay where they overlap"
    assert (far[3, 9] == 200).all(), "B's visible part is pasted"
    assert (near[3, 6] == 200).all() and (near[3, 9] == 200).all(), "B in front of A: pasted whole"
    # Half of each mask lies in the overlap: whichever is behind is half hidden.
    assert seen == {("a:perpetrator", 0): 1.0, ("b:perpetrator", 0): 0.5,
                    ("a:perpetrator", 1): 0.5, ("b:perpetrator", 1): 1.0}


@pytest.mark.parametrize(("shares_b", "share"), [
    ([1.0] * 8, 1.0),  # visible throughout
    ([0.0, 0.0, 0.1, 0.2, 0.2, 0.9, 1.0, 1.0], 0.2),  # hidden behind the other until the last second
    ([1.0, 1.0, 0.7, 0.8, 0.0, 0.7, 0.2, 0.0], 0.7),  # hidden on one frame of the window, and after it
])
def test_visible_share_is_the_less_visible_threats_while_an_alert_must_be_decided(shares_b, share):
    from types import SimpleNamespace

    from vigil360.bench.alerts_bench import _visible_share

    # 2 fps: the window from 2.5 s to 1.0 s before frame 7 is frames 2..5.
    threats = [SimpleNamespace(actor_id="a:p"), SimpleNamespace(actor_id="b:p")]
    seen = {("a:p", f): 1.0 for f in range(8)} | {("b:p", f): value for f, value in enumerate(shares_b)}
    assert _visible_share(threats, seen, 7, 2.0) == share
