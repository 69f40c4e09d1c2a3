"""Synthetic scenarios: determinism, exact masks, seam crossing, distractors, schema validity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from vigil360.bench.synthetic import (
    SCENARIO_KINDS,
    ScenarioSpec,
    find_clips,
    ground_truth,
    iter_frames,
    read_scenario,
    render,
    suite_specs,
)
from vigil360.cli import main
from vigil360.edge.geometry import yaw_difference
from vigil360.masks import decode
from vigil360.records import iter_records
from vigil360.schema import ANOMALY_CLASSES, VideoRecord

TINY = {"width": 240, "height": 120, "fps": 10.0, "duration_s": 2.0}


def _cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_same_seed_same_clip_other_seed_other_clip(synthetic_clip_factory):
    a = synthetic_clip_factory(kind="collide", seed=3)
    b = render(ScenarioSpec(kind="collide", seed=3, width=480, height=240, fps=15.0, duration_s=3.0))
    c = synthetic_clip_factory(kind="collide", seed=4)
    assert np.array_equal(a.frames, b.frames)
    assert a.truth == b.truth and a.scenario == b.scenario
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("kind", SCENARIO_KINDS)
def test_every_kind_validates_and_masks_fit(kind):
    clip = render(ScenarioSpec(kind=kind, seed=11, turning_deg_s=10.0, **TINY))
    assert clip.frames.shape == (20, 120, 240, 3) and clip.frames.dtype == np.uint8
    record = VideoRecord.model_validate_json(clip.truth.model_dump_json())
    assert record.kind == "ground_truth" and record.video.dataset == "synthetic"
    for entity in record.entities:
        assert entity.masks, entity.entity_id
        assert all(rle.size == (120, 240) for rle in entity.masks.values())
        assert entity.caption is not None and entity.caption.appearance and entity.caption.motion
    if kind == "bystander":
        assert record.entities == [] and record.video.intervals == []
    else:
        assert [i.anomaly_class for i in record.video.intervals][0] in ANOMALY_CLASSES
        assert record.entities[0].role == "perpetrator"


def test_masks_only_path_gives_the_same_truth(synthetic_clip):
    record, scenario = ground_truth(synthetic_clip.spec)
    assert record == synthetic_clip.truth and scenario == synthetic_clip.scenario


def test_streamed_frames_equal_rendered_frames(synthetic_clip):
    streamed = list(iter_frames(synthetic_clip.spec))
    assert len(streamed) == synthetic_clip.spec.num_frames
    assert np.array_equal(streamed[5], synthetic_clip.frames[5])


def test_stealing_crosses_the_seam(synthetic_clip):
    thief = synthetic_clip.scenario.actor("perpetrator")
    width = synthetic_clip.spec.width
    left = right = False
    for rle in thief.masks.values():
        columns = np.flatnonzero(decode(rle).any(axis=0))
        left |= bool(columns.min() < 3)
        right |= bool(columns.max() > width - 4)
    assert left and right
    yaws = np.array(thief.yaw)
    behind = np.abs(yaws) > 120
    assert np.any(behind & (yaws > 0)) and np.any(behind & (yaws < 0))


def test_bystanders_are_distractors_not_entities(synthetic_clip):
    scenario, record = synthetic_clip.scenario, synthetic_clip.truth
    distractors = scenario.distractors
    assert [d.actor_id for d in distractors] == ["bystander0"]
    assert all(d.entity_id is None and d.role is None for d in distractors)
    assert {e.entity_id for e in record.entities} == {"perpetrator"}
    assert distractors[0].min_distance_m() >= 3.0
    assert distractors[0].masks, "the bystander should be visible"


def test_lookalikes_dress_like_the_perpetrator():
    clip = render(ScenarioSpec(kind="lookalikes", seed=5, **TINY))
    thief = clip.scenario.actor("perpetrator")
    twins = [a for a in clip.scenario.actors if a.actor_id.startswith("lookalike")]
    assert twins and all(t.is_distractor and t.caption.appearance == thief.caption.appearance for t in twins)


def test_actor_masks_never_overlap_and_match_visible_counts(synthetic_clip_factory):
    clip = synthetic_clip_factory(kind="lookalikes", seed=2, bystanders=2)
    height, width = clip.spec.height, clip.spec.width
    for frame in range(0, clip.spec.num_frames, 5):
        cover = np.zeros((height, width), dtype=np.int32)
        for actor in clip.scenario.actors:
            if frame in actor.masks:
                mask = decode(actor.masks[frame])
                assert mask.sum() == actor.visible_px[actor.frames.index(frame)]
                cover += mask
        assert cover.max() <= 1


def test_boxes_agree_with_physical_truth(synthetic_clip):
    # An unoccluded person standing on the ground: the box's bottom is the ground-contact pitch
    # (to within a pixel) and its centre bearing is the actor's bearing (the reaching arm skews it).
    thief = synthetic_clip.scenario.actor("perpetrator")
    pixel_deg = 180.0 / synthetic_clip.spec.height
    checked = 0
    for i, frame in enumerate(thief.frames):
        box = thief.boxes.get(frame)
        if box is None or thief.distance_m[i] < 1.0:
            continue
        assert abs(box.pitch - box.height / 2 - thief.contact_pitch[i]) <= 1.5 * pixel_deg
        assert abs(yaw_difference(box.yaw, thief.yaw[i])) <= 8.0
        checked += 1
    assert checked > 5


def test_turning_wearer_rotates_the_background():
    spec = ScenarioSpec(kind="bystander", seed=1, bystanders=0, turning_deg_s=30.0, noise_sigma=0.0, **TINY)
    clip = render(spec)
    # 1 s at 30 deg/s to the right: the world appears 30 deg (20 px) further left.
    shift = round(30.0 * spec.width / 360.0)
    later = clip.frames[10]
    assert np.array_equal(later, np.roll(clip.frames[0], -shift, axis=1))
    assert clip.scenario.wearer_yaw[10] - clip.scenario.wearer_yaw[0] == pytest.approx(30.0)


def test_sub_pixel_turning_blends_neighbouring_columns():
    # 7.5 deg/s at 10 fps and 240 px: half a pixel per frame, so frames two apart are exact
    # one-pixel shifts of each other and the frame between is neither of them.
    spec = ScenarioSpec(kind="bystander", seed=1, bystanders=0, turning_deg_s=7.5, noise_sigma=0.0, **TINY)
    frames = render(spec).frames
    for i in range(spec.num_frames - 2):
        assert np.array_equal(frames[i + 2], np.roll(frames[i], -1, axis=1))
        assert not np.array_equal(frames[i + 1], frames[i])
        assert not np.array_equal(frames[i + 1], frames[i + 2])


def test_interval_covers_the_approach(synthetic_clip):
    interval = synthetic_clip.truth.video.intervals[0]
    thief = synthetic_clip.scenario.actor("perpetrator")
    assert interval.anomaly_class == "Stealing"
    assert interval.direction in ("left_back", "right_back")
    within = thief.first_frame_within(1.5)
    assert within is not None and interval.start_frame <= within <= interval.end_frame
    assert interval.start_frame <= synthetic_clip.scenario.event_frame <= interval.end_frame


def test_thrown_ball_flies_and_is_a_related_entity(synthetic_clip_factory):
    clip = synthetic_clip_factory(kind="throw", seed=1)
    ball = clip.scenario.actor("ball")
    assert max(ball.elevation_m) > 1.0 and ball.min_distance_m() < 1.0
    assert {e.entity_id: e.role for e in clip.truth.entities} == {
        "perpetrator": "perpetrator",
        "ball": "related",
    }
    assert ball.frames[0] > 0, "the ball appears when it is thrown, not before"


def test_written_clip_round_trips(synthetic_clip_files, synthetic_clip):
    [record] = list(iter_records(synthetic_clip_files.truth))
    assert record == synthetic_clip.truth
    assert read_scenario(synthetic_clip_files.scenario) == synthetic_clip.scenario
    capture = cv2.VideoCapture(str(synthetic_clip_files.video))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    assert len(frames) == synthetic_clip.spec.num_frames
    assert np.abs(frames[3].astype(int) - synthetic_clip.frames[3]).mean() < 8.0  # lossy codec
    assert [c.truth for c in find_clips(synthetic_clip_files.truth.parent)] == [synthetic_clip_files.truth]
    assert not list(synthetic_clip_files.truth.parent.glob(".*")), "no partial files left behind"


def test_cli_writes_a_valid_suite_and_resumes(tmp_path, capsys):
    args = [
        "synth",
        "--out",
        str(tmp_path),
        "--n",
        "3",
        "--seed",
        "1",
        "--width",
        "128",
        "--height",
        "64",
        "--duration",
        "1",
    ]
    assert _cli(args) == 0
    records = list(iter_records(tmp_path))
    assert [r.video.video_id.split("-")[1] for r in sorted(records, key=lambda r: r.video.video_id)] == [
        "collide",
        "stealing",
        "traffic",
    ]
    assert len(list(tmp_path.glob("*.mp4"))) == 3 and len(list(tmp_path.glob("*.scenario.json.gz"))) == 3
    assert _cli(args) == 0
    assert "0 clip(s) written, 3 already complete" in capsys.readouterr().out


def test_cli_rejects_bad_settings(tmp_path, capsys):
    assert _cli(["synth", "--out", str(tmp_path), "--n", "1", "--width", "100", "--height", "64"]) == 1
    assert "2:1" in capsys.readouterr().err
    assert _cli(["synth", "--out", str(tmp_path), "--kinds", "stealing,mugging"]) == 1
    assert "mugging" in capsys.readouterr().err


def test_spec_and_suite_rules():
    with pytest.raises(ValidationError, match="2:1"):
        ScenarioSpec(kind="stealing", width=300, height=100)
    specs = suite_specs(7, seed=0)
    assert [s.kind for s in specs[:6]] == list(SCENARIO_KINDS) and specs[6].kind == SCENARIO_KINDS[0]
    assert specs[0].turning_deg_s == 0 and all(abs(s.turning_deg_s) <= 20 for s in specs)
    assert len({s.video_id for s in specs}) == 7
    assert suite_specs(3, seed=0) == specs[:3]
    assert specs[0].cross_seam is True and specs[5].cross_seam is True and specs[6].cross_seam is False
    assert specs[1].cross_seam is None


def test_timing_helper_reports_every_repeat():
    from vigil360.bench.synthetic.benchmark import time_synthesis

    timing = time_synthesis(repeats=2, width=64, height=32, duration_s=0.5, encode=False)
    assert len(timing.wall_s) == 2 and all(s > 0 for s in timing.wall_s)
    assert "64x32" in timing.summary() and "median" in timing.summary()


def test_actor_at_attributes_a_box_to_the_right_actor(synthetic_clip):
    scenario = synthetic_clip.scenario
    bystander = scenario.actor("bystander0")
    frame = next(iter(bystander.boxes))
    assert scenario.actor_at(frame, bystander.boxes[frame]) is bystander
    far_away = bystander.boxes[frame].model_copy(update={"pitch": 80.0, "height": 1.0})
    assert scenario.actor_at(frame, far_away) is None


def test_pixels_change_exactly_where_the_masks_say():
    # Still wearer, no noise: a pixel differs from the empty scene exactly when an actor covers it.
    spec = ScenarioSpec(kind="stealing", seed=7, cross_seam=True, bystanders=2, noise_sigma=0.0, **TINY)
    clip = render(spec)
    covered = np.zeros((spec.num_frames, spec.height, spec.width), dtype=bool)
    for actor in clip.scenario.actors:
        for frame, rle in actor.masks.items():
            covered[frame] |= decode(rle)
    never = ~covered.any(axis=0)
    assert np.all(clip.frames[:, never] == clip.frames[0, never])  # the background is static
    # The empty scene at each pixel, taken from any frame where nothing covers it.
    free = np.argmin(covered, axis=0)
    empty = np.take_along_axis(clip.frames, free[None, :, :, None], axis=0)[0]
    assert (~covered).any(axis=0).mean() > 0.99
    for frame in range(spec.num_frames):
        changed = np.any(clip.frames[frame] != empty, axis=-1)
        known = (~covered).any(axis=0)
        assert not np.any(changed & ~covered[frame] & known), frame
        if covered[frame].any():
            assert changed[covered[frame] & known].mean() > 0.95


def test_captions_name_clothing_and_objects_only():
    import re

    from vigil360.bench.synthetic.sprites import COLOURS

    colour = "(?:" + "|".join(COLOURS) + ")"
    appearance = re.compile(
        rf"^(?:a person in an? {colour} top(?: and {colour} trousers| riding a bicycle)"
        rf"|an? {colour} car|a small {colour} ball)$"
    )
    for kind in SCENARIO_KINDS:
        for seed in range(4):
            clip_truth, scenario = ground_truth(
                ScenarioSpec(kind=kind, seed=seed, width=64, height=32, fps=2, duration_s=0.5)
            )
            for actor in scenario.actors:
                assert appearance.match(actor.caption.appearance), actor.caption.appearance
                assert actor.caption.motion
                assert not re.search(r"\ba [aeiou]", actor.caption.text())
            assert not re.search(r"\bA [aeiou]|\ba [aeiou]", clip_truth.video.caption or "")


def test_a_failed_render_leaves_no_files_and_does_not_hang(tmp_path, monkeypatch):
    from vigil360.bench.synthetic import suite

    def broken(spec, sink):
        for _ in range(10):  # more frames than the encoder queue holds
            sink(np.zeros((spec.height, spec.width, 3), np.uint8))
        raise RuntimeError("boom")

    monkeypatch.setattr(suite, "render_to", broken)
    with pytest.raises(RuntimeError, match="boom"):
        suite.write_clip(ScenarioSpec(kind="stealing", **TINY), tmp_path)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(SCENARIO_KINDS),
    seed=st.integers(0, 2**31 - 2),
    turning=st.floats(-30, 30),
    duration=st.floats(0.5, 12.0),
)
def test_truth_invariants_hold_for_any_scenario(kind, seed, turning, duration):
    spec = ScenarioSpec(
        kind=kind, seed=seed, width=96, height=48, fps=4.0, duration_s=duration, turning_deg_s=turning
    )
    record, scenario = ground_truth(spec)
    VideoRecord.model_validate_json(record.model_dump_json())
    entity_ids = {e.entity_id for e in record.entities}
    for actor in scenario.actors:
        n = len(actor.frames)
        assert len(actor.yaw) == len(actor.distance_m) == len(actor.visible_px) == n
        assert set(actor.masks) == set(actor.boxes) <= set(actor.frames)
        assert all(0 <= f < spec.num_frames for f in actor.frames)
        if actor.is_distractor:
            assert actor.min_distance_m() >= 3.0 and actor.actor_id not in entity_ids
        elif actor.masks:
            assert actor.entity_id in entity_ids
    for interval in record.video.intervals:
        assert 0 <= interval.start_frame <= interval.end_frame < spec.num_frames
    if kind in ("stealing", "lookalikes", "collide") and duration >= 10:
        assert scenario.actor("perpetrator").min_distance_m() < 1.0
