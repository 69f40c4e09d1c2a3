"""VIEW360-family importers: parse the hand-written fixtures, reject malformed lines by file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil360.bench.importers import (
    assemble_record,
    read_instances_file,
    read_prompt_file,
    read_temporal_file,
)
from vigil360.records import RecordError

FIXTURES = Path(__file__).parent / "fixtures"


def test_temporal_file_parses_classes_locations_directions() -> None:
    videos = read_temporal_file(FIXTURES / "view360_temporal.txt", width=64, height=32, dataset="VIEW360")
    by_id = {v.video_id: v for v in videos}
    assert list(by_id) == [
        "Stealing_Cafe_003",
        "Glancing_CAFE_004",
        "Teasing_Bus_Stop_012",
        "Collide_Street_101",
    ]
    glance = by_id["Glancing_CAFE_004"]
    assert glance.anomaly_class == "Glance"
    assert glance.location == "cafe" == by_id["Stealing_Cafe_003"].location
    assert [(i.start_frame, i.end_frame, i.direction) for i in glance.intervals] == [
        (10, 50, "right_back"),
        (300, 360, "center"),
    ]
    assert by_id["Stealing_Cafe_003"].intervals[0].direction == "left_back"
    assert by_id["Teasing_Bus_Stop_012"].location == "bus_stop"
    assert by_id["Teasing_Bus_Stop_012"].intervals[0].direction is None
    assert glance.fps == 30.0 and glance.width == 64 and glance.dataset == "VIEW360"


def test_temporal_first_frame_shift_and_fps() -> None:
    videos = read_temporal_file(FIXTURES / "view360_temporal.txt", width=64, height=32, fps=25, first_frame=1)
    assert videos[0].intervals[0].start_frame == 119
    assert videos[0].fps == 25


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Stealing_Cafe_003 10", "start/end frame pairs"),
        ("Stealing_Cafe_003 10 x", "integers"),
        ("Stealing_Cafe 10 20", "Class_Location_NNN"),
        ("Dancing_Cafe_003 10 20", "unknown anomaly class"),
        ("Stealing_Cafe_003_lr 10 20", "one per interval"),
        ("Stealing_Cafe_003_lx 10 20 30 40", "only l, r, c"),
        ("Stealing_Cafe_003 20 10", "before start_frame"),
    ],
)
def test_temporal_rejects_malformed_line_naming_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "temporal.txt"
    path.write_text("Glance_Park_001 1 2\n\n" + line + "\n")
    with pytest.raises(RecordError, match=message) as info:
        read_temporal_file(path, width=64, height=32)
    assert f"{path}:3" in str(info.value)


def test_temporal_rejects_duplicate_video(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Glance_Park_001 1 2\nGlancing_Park_001 3 4\n")
    # The class spelling differs but the stems are distinct ids; a true repeat is an error.
    read_temporal_file(path, width=64, height=32)
    path.write_text("Glance_Park_001 1 2\nGlance_Park_001_c 3 4\n")
    with pytest.raises(RecordError, match=r"t.txt:2.*already listed on line 1"):
        read_temporal_file(path, width=64, height=32)


def test_prompt_file_roles_prompts_and_text() -> None:
    entities = read_prompt_file(FIXTURES / "Stealing_Cafe_003.prompts.csv")
    assert list(entities) == ["actor0", "subject0", "related0"]
    actor = entities["actor0"]
    assert actor.role == "perpetrator"
    assert actor.boxes[120] == (0.10, 0.40, 0.16, 0.80)
    assert [(p.x, p.positive) for p in actor.points[121]] == [(0.14, False)]
    caption = actor.caption()
    assert caption is not None
    assert caption.appearance == "a man in a black coat, carrying a backpack"  # quoted comma kept
    assert caption.motion.startswith("reaches into the bag")
    assert entities["subject0"].role == "victim"
    assert entities["subject0"].caption().text() == "a woman in a red sweater sitting at the table"
    assert entities["related0"].role == "related"
    assert (
        read_prompt_file(FIXTURES / "Stealing_Cafe_003.prompts.csv", subject_role="target")["subject0"].role
        == "target"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("120, actor0, box, 0.1, 0.2, 0.3", "expected 4 coordinates"),
        ("120, actor0, point, 1.5, 0.2", "relative to the frame"),
        ("120, actor0, point, 0.5, 0.2, 2", "label must be 0 or 1"),
        ("120, villain0, point, 0.5, 0.2", "actor0-9"),
        ("x, actor0, point, 0.5, 0.2", "not an integer"),
        ("120, actor0, polygon, 0.5, 0.2", "not point or box"),
        ("-3, actor0, point, 0.5, 0.2", "negative"),
        ("120, actor0", "expected 'frame, entity_id"),
        ("120, actor0, box, 0.5, 0.2, 0.1, 0.3", "out of order"),
        ("-1, actor0, motion,", "has no text"),
    ],
)
def test_prompt_file_rejects_malformed_row(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "v.csv"
    path.write_text("10, actor0, point, 0.5, 0.5\n" + row + "\n")
    with pytest.raises(RecordError, match=message) as info:
        read_prompt_file(path)
    assert f"{path}:2" in str(info.value)


def test_instances_file_and_list_form(tmp_path: Path) -> None:
    sidecar = read_instances_file(FIXTURES / "Stealing_Cafe_003.instances.json")
    actor = sidecar.instances["actor0"]
    assert actor.enter_frame == 100 and len(actor.visible_frames) == 151 - 2
    path = tmp_path / "x.instances.json"
    path.write_text('{"instances": [{"id": "actor0", "text": "t", "enter_frame": 0, "exit_frame": 3}]}')
    assert read_instances_file(path).instances["actor0"].exit_frame == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"instances": {"actor0": {"enter_frame": 5, "exit_frame": 2}}}', "before enter_frame"),
        (
            '{"instances": {"actor0": {"enter_frame": 0, "exit_frame": 2, "colour": 1}}}',
            r"instances\.actor0\.colour",
        ),
        ('{"instances": {"actor0": {"enter_frame": 0, "exit_frame": 2, "missing_frames": [7]}}}', "outside"),
        ('{"instances": [{"text": "no id", "enter_frame": 0, "exit_frame": 1}]}', "no 'id'"),
        ('{"instances": {\n "actor0": }', r":2:\d+: malformed JSON"),
    ],
)
def test_instances_rejects_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.instances.json"
    path.write_text(text)
    with pytest.raises(RecordError, match=message) as info:
        read_instances_file(path)
    assert str(path) in str(info.value)


def test_assemble_ground_truth_record() -> None:
    video = read_temporal_file(FIXTURES / "view360_temporal.txt", width=64, height=32)[0]
    record = assemble_record(
        video,
        read_prompt_file(FIXTURES / "Stealing_Cafe_003.prompts.csv"),
        read_instances_file(FIXTURES / "Stealing_Cafe_003.instances.json"),
    )
    assert record.kind == "ground_truth"
    assert record.video.caption.startswith("A man takes a bag")
    roles = {e.entity_id: e.role for e in record.entities}
    assert roles == {"actor0": "perpetrator", "subject0": "victim", "related0": "related"}
    box = record.entities[0].boxes[120]
    # x centre 0.13 of the frame -> yaw (0.13 - 0.5) * 360 = -133.2 (behind, to the left)
    assert box.yaw == pytest.approx(-133.2) and box.width == pytest.approx(0.06 * 360)
    related = next(e for e in record.entities if e.entity_id == "related0")
    assert related.caption is not None and related.caption.text() == "the bag"  # from the sidecar


def test_import_command_writes_valid_ground_truth(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from vigil360.bench.cli import register
    from vigil360.records import iter_records

    app = typer.Typer()
    register(app)
    out = tmp_path / "gt.jsonl"
    result = CliRunner().invoke(app, [
        "bench", "import-view360", "--temporal", str(FIXTURES / "view360_temporal.txt"), "--out", str(out),
        "--width", "1920", "--height", "960", "--prompts", str(FIXTURES), "--instances", str(FIXTURES),
    ])
    assert result.exit_code == 0, result.output + repr(result.exception)
    records = {r.video.video_id: r for r in iter_records(out)}
    assert len(records) == 4
    assert [e.entity_id for e in records["Stealing_Cafe_003"].entities] == ["actor0", "subject0", "related0"]
    assert records["Glancing_CAFE_004"].entities == []
