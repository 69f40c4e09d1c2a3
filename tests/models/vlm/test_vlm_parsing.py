"""Output parsing as a table: well-formed, recoverable and unrecoverable model outputs."""

from __future__ import annotations

import pytest

from vigil360.models.vlm.parsing import load_lenient_json, parse_caption, parse_grounding, screen_sensitive

ONE_VIEW = [(500, 400)]  # width, height: boxes in 0..1000 map to x * 0.5, y * 0.4
TWO_VIEWS = [(500, 400), (1000, 1000)]

GOOD = '[{"role": "perpetrator", "label": "person", "box": [100, 200, 300, 400], "confidence": 0.9}]'

# (name, text, views, expected entities as (view, box px, role, label, confidence), rejected substrings,
#  repair substrings)
GROUNDING_TABLE = [
    ("well-formed", GOOD, ONE_VIEW, [(0, (50, 80, 150, 160), "perpetrator", "person", 0.9)], [], []),
    (
        "code fence and prose",
        f"Sure! Here you go:\n```json\n{GOOD}\n```\nHope it helps.",
        ONE_VIEW,
        [(0, (50, 80, 150, 160), "perpetrator", "person", 0.9)],
        [],
        ["extracted JSON"],
    ),
    (
        "trailing commas",
        '[{"role": "victim", "label": "person", "box": [0, 0, 1000, 1000],},]',
        ONE_VIEW,
        [(0, (0, 0, 500, 400), "victim", "person", None)],
        [],
        ["trailing commas"],
    ),
    (
        "single quotes",
        "[{'role': 'target', 'label': 'bag', 'box': [500, 500, 600, 600], 'confidence': 0.5}]",
        ONE_VIEW,
        [(0, (250, 200, 300, 240), "target", "bag", 0.5)],
        [],
        ["Python-style"],
    ),
    (
        "box out of range is clipped",
        '[{"role": "perpetrator", "label": "person", "box": [-50, 100, 1200, 900]}]',
        ONE_VIEW,
        [(0, (0, 40, 500, 360), "perpetrator", "person", None)],
        [],
        ["clipped"],
    ),
    (
        "swapped corners are reordered",
        '[{"role": "victim", "label": "person", "box": [300, 400, 100, 200]}]',
        ONE_VIEW,
        [(0, (50, 80, 150, 160), "victim", "person", None)],
        [],
        ["reordered"],
    ),
    (
        "role synonym and percent confidence",
        '[{"role": "Attacker", "label": "person", "bbox": [100, 200, 300, 400], "score": 85}]',
        ONE_VIEW,
        [(0, (50, 80, 150, 160), "perpetrator", "person", 0.85)],
        [],
        ["percentage"],
    ),
    (
        "entities wrapper and view numbers",
        '{"entities": [{"role": "perpetrator", "label": "person", "view": 2, "box": [0, 0, 500, 500]},'
        ' {"role": "victim", "label": "person", "view": 1, "box": [0, 0, 1000, 500]}]}',
        TWO_VIEWS,
        [
            (1, (0, 0, 500, 500), "perpetrator", "person", None),
            (0, (0, 0, 500, 200), "victim", "person", None),
        ],
        [],
        ["unwrapped"],
    ),
    (
        "single object instead of a list",
        '{"role": "target", "label": "phone", "box": [10, 10, 20, 20]}',
        ONE_VIEW,
        [(0, (5, 4, 10, 8), "target", "phone", None)],
        [],
        ["single object"],
    ),
    (
        "truncated by the token budget",
        '[{"role": "perpetrator", "label": "person", "box": [100, 200, 300, 400]}, {"role": "vic',
        ONE_VIEW,
        [(0, (50, 80, 150, 160), "perpetrator", "person", None)],
        [],
        ["cut off"],
    ),
    (
        "missing role is rejected, the rest kept",
        '[{"label": "person", "box": [1, 1, 2, 2]}, ' + GOOD[1:],
        ONE_VIEW,
        [(0, (50, 80, 150, 160), "perpetrator", "person", 0.9)],
        ["entity 0: no role"],
        [],
    ),
    (
        "unknown role",
        '[{"role": "hero", "label": "person", "box": [1, 1, 2, 2]}]',
        ONE_VIEW,
        [],
        ["unknown role"],
        [],
    ),
    ("missing label", '[{"role": "victim", "box": [1, 1, 2, 2]}]', ONE_VIEW, [], ["no label"], []),
    (
        "box with three numbers",
        '[{"role": "victim", "label": "person", "box": [1, 1, 2]}]',
        ONE_VIEW,
        [],
        ["not four numbers"],
        [],
    ),
    (
        "box with a word",
        '[{"role": "victim", "label": "person", "box": [1, "left", 2, 2]}]',
        ONE_VIEW,
        [],
        ["non-number"],
        [],
    ),
    (
        "empty box after clipping",
        '[{"role": "victim", "label": "person", "box": [1100, 0, 1200, 50]}]',
        ONE_VIEW,
        [],
        ["empty box"],
        [],
    ),
    (
        "view number out of range",
        '[{"role": "victim", "label": "person", "view": 3, "box": [1, 1, 2, 2]}]',
        TWO_VIEWS,
        [],
        ["view 3 is not one of 1..2"],
        [],
    ),
    (
        "no view number with two views",
        '[{"role": "victim", "label": "person", "box": [1, 1, 2, 2]}]',
        TWO_VIEWS,
        [],
        ["no view number"],
        [],
    ),
    (
        "confidence out of range",
        '[{"role": "victim", "label": "p", "box": [1, 1, 2, 2], "confidence": -3}]',
        ONE_VIEW,
        [],
        ["outside 0..1"],
        [],
    ),
    (
        "a non-finite coordinate rejects that entity only",
        '[{"role": "perpetrator", "label": "p", "box": ["nan", 1, 2, 2]},'
        ' {"role": "victim", "label": "q", "box": [0, 0, 1000, 1000], "view": "inf"},'
        ' {"role": "victim", "label": "r", "box": [0, 0, 1000, 1000]}]',
        ONE_VIEW,
        [(0, (0, 0, 500, 400), "victim", "r", None)],
        ["box has a non-number", "view 'inf' is not one of"],
        [],
    ),
    ("empty list: the model saw nothing unusual", "[]", ONE_VIEW, [], [], []),
    ("no JSON at all", "The man on the left steals the bag.", ONE_VIEW, [], ["no JSON"], []),
    ("gibberish with a bracket", "<row_1_col_2> [[{ :: ,,", ONE_VIEW, [], ["could not be repaired"], []),
    ("a number, not a list", '{"answer": 3}', ONE_VIEW, [], ["entity 0: no role"], []),
]


@pytest.mark.parametrize(
    ("name", "text", "views", "entities", "rejected", "repairs"),
    GROUNDING_TABLE,
    ids=[row[0] for row in GROUNDING_TABLE],
)
def test_grounding_table(name, text, views, entities, rejected, repairs):
    result = parse_grounding(text, views)
    got = [
        (
            e.view_index,
            tuple(round(v, 6) for v in e.box_xyxy),
            e.role,
            e.label,
            None if e.confidence is None else round(e.confidence, 6),
        )
        for e in result.entities
    ]
    assert got == [(v, tuple(float(b) for b in box), r, lab, c) for v, box, r, lab, c in entities]
    assert len(result.rejected) == len(rejected)
    for reason, expected in zip(result.rejected, rejected, strict=True):
        assert expected in reason
    for expected in repairs:
        assert any(expected in note for note in result.repairs), result.repairs
    assert result.raw_text == text
    assert result.ok == (bool(entities) or not rejected)


def test_escaped_quote_inside_a_string_does_not_end_the_span():
    value = load_lenient_json('x {"label": "a \\"big\\" bag", "role": "target"} y', [])
    assert value == {"label": 'a "big" bag', "role": "target"}


CAPTION_TABLE = [
    (
        "json",
        '{"appearance": "dark jacket, carries a backpack", "motion": "runs to the left"}',
        True,
        "dark jacket, carries a backpack",
        "runs to the left",
        None,
    ),
    (
        "fenced with trailing comma",
        '```json\n{"appearance": "red coat", "motion": "waves",}\n```',
        True,
        "red coat",
        "waves",
        None,
    ),
    (
        "labelled lines",
        "Appearance: grey hoodie and a bag.\nMotion: grabs the phone and runs.",
        True,
        "grey hoodie and a bag.",
        "grabs the phone and runs.",
        None,
    ),
    ("missing motion", '{"appearance": "blue shirt"}', False, "blue shirt", "", "no motion"),
    ("motion not text", '{"appearance": "blue shirt", "motion": 3}', False, "", "", "motion is not text"),
    ("no caption", "::::::", False, "", "", "no JSON"),
    ("list instead of object", '["a", "b"]', False, "", "", "expected an object"),
]


@pytest.mark.parametrize(
    ("name", "text", "ok", "appearance", "motion", "reason"),
    CAPTION_TABLE,
    ids=[row[0] for row in CAPTION_TABLE],
)
def test_caption_table(name, text, ok, appearance, motion, reason):
    result = parse_caption(text)
    assert result.ok is ok
    assert result.caption.appearance == appearance
    assert result.caption.motion == motion
    if reason is None:
        assert result.reason is None
    else:
        assert reason in result.reason


@pytest.mark.parametrize(
    ("text", "kept", "removed"),
    [
        ("a young man in a red jacket, carrying a bag", "carrying a bag", ["a young man in a red jacket"]),
        ("a black jacket and white shoes", "a black jacket and white shoes", []),
        ("an elderly woman; holds a cane", "holds a cane", ["an elderly woman"]),
        ("an attractive person, wearing a cap", "wearing a cap", ["an attractive person"]),
        ("a 30-year-old, in a hoodie", "in a hoodie", ["a 30-year-old"]),
        ("an asian man in a coat, holding a phone", "holding a phone", ["an asian man in a coat"]),
        ("holding a folded umbrella", "holding a folded umbrella", []),
    ],
)
def test_screen_sensitive(text, kept, removed):
    clean, dropped = screen_sensitive(text)
    assert clean == kept
    assert dropped == removed


def test_caption_screening_is_recorded_and_can_empty_a_field():
    result = parse_caption('{"appearance": "a handsome old man", "motion": "pushes the cyclist"}')
    assert not result.ok and "no appearance" in result.reason
    assert result.caption.motion == "pushes the cyclist"
    assert any("identity/age/race/looks" in note for note in result.repairs)
