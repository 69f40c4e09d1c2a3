"""The reflex tier on the scenario generator's clips (small and short, so the suite stays fast)."""

from collections.abc import Callable

from vigil360.bench.reflex_bench import FrameTrack, match_frame
from vigil360.bench.synthetic import Clip
from vigil360.edge.reflex import ReflexPerception

SIZE = {"width": 480, "height": 240, "fps": 30.0}


def run_clip(clip: Clip) -> list[list]:
    tier = ReflexPerception(clip.spec.width, clip.spec.height)
    return [tier.process(frame, index / clip.spec.fps) for index, frame in enumerate(clip.frames)]


def matched_ids(clip: Clip, results: list[list], actor_id: str) -> dict[int, tuple[int, bool]]:
    """frame -> (track id, flagged) of the track matched to `actor_id`."""
    actor = clip.scenario.actor(actor_id)
    out = {}
    for index, tracks in enumerate(results):
        rows = [FrameTrack(t.track_id, t.box.yaw, t.box.pitch, t.box.width, t.box.height, t.flagged, t.reason)
                for t in tracks]
        boxes = {a.actor_id: a.boxes[index] for a in clip.scenario.actors if index in a.boxes}
        for track_id, matched in match_frame(rows, boxes).items():
            if matched == actor.actor_id:
                out[index] = (track_id, next(t.flagged for t in tracks if t.track_id == track_id))
    return out


def test_a_turning_wearer_in_an_empty_scene_flags_nothing(synthetic_clip_factory: Callable[..., Clip]) -> None:
    clip = synthetic_clip_factory(kind="bystander", bystanders=0, turning_deg_s=30.0, duration_s=4.0, **SIZE)
    results = run_clip(clip)
    assert not any(track.flagged for tracks in results for track in tracks)
    assert sum(len(tracks) for tracks in results) <= 5


def test_a_thief_from_behind_is_flagged_in_time_and_keeps_its_id_across_the_seam(
    synthetic_clip_factory: Callable[..., Clip],
) -> None:
    clip = synthetic_clip_factory(kind="stealing", seed=11, cross_seam=True, bystanders=1, duration_s=8.0, **SIZE)
    results = run_clip(clip)
    thief = clip.scenario.actor("perpetrator")
    within = thief.first_frame_within(1.5)
    assert within is not None
    seen = matched_ids(clip, results, "perpetrator")
    flagged = [frame for frame, (_, is_flagged) in seen.items() if is_flagged]
    assert flagged, "the thief was never flagged"
    lead_s = (within - min(flagged)) / clip.spec.fps
    assert lead_s >= 1.0
    # Across the seam: the frames where its bearing wraps keep one track id either side.
    crossings = [thief.frames[i] for i in range(1, len(thief.frames))
                 if abs(thief.yaw[i] - thief.yaw[i - 1]) > 180]
    assert crossings, "the scripted approach should cross the seam"
    for frame in crossings:
        before = [seen[f][0] for f in range(frame - 3, frame) if f in seen]
        after = [seen[f][0] for f in range(frame, frame + 3) if f in seen]
        assert before and after and set(before) == set(after)
    # The harmless passer-by is never flagged.
    passer = matched_ids(clip, results, "bystander0")
    assert not any(is_flagged for _, is_flagged in passer.values())


def test_flagged_thief_is_described_and_located_while_the_wearer_turns(
    synthetic_clip_factory: Callable[..., Clip],
) -> None:
    clip = synthetic_clip_factory(kind="stealing", seed=3, bystanders=0, duration_s=8.0, turning_deg_s=20.0, **SIZE)
    results = run_clip(clip)
    flagged = [(index, t) for index, tracks in enumerate(results) for t in tracks if t.flagged]
    assert flagged
    index, track = flagged[0]
    thief = clip.scenario.actor("perpetrator")
    truth_yaw = thief.yaw[thief.frames.index(index)]
    assert abs((track.box.yaw - truth_yaw + 180) % 360 - 180) < 15
    assert track.reason in ("approaching fast", "close behind you")
    assert track.appearance.label_guess == "person"
    assert 0 < track.distance.metres < 8
