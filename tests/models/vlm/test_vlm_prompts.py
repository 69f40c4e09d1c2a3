"""Prompt text: what the model is asked, and that the example reply it is shown is itself parseable."""

from __future__ import annotations

import json
import re

import pytest

from vigil360.models.vlm.parsing import parse_caption, parse_grounding
from vigil360.models.vlm.prompts import BOX_SCALE, caption_request, chat_messages, grounding_request


@pytest.mark.parametrize("views", [1, 3])
def test_grounding_prompt_example_is_valid_and_parses(views):
    request = grounding_request(views, "A man\n snatches   a phone.")
    assert "A man snatches a phone." in request.user  # context on one line
    assert f"0..{BOX_SCALE}" in request.user
    example = next(line for line in request.user.splitlines() if line.startswith("[{"))
    json.loads(example)
    result = parse_grounding(example, [(640, 480)] * views)
    assert [e.role for e in result.entities] == ["perpetrator"] and not result.rejected
    assert ("numbered 1 to 3" in request.user) == (views == 3)
    assert ('"view"' in request.user) == (views == 3)


def test_caption_prompt_asks_for_the_papers_structure_and_forbids_looks():
    request = caption_request("Someone throws a ball at a cyclist.")
    assert "Someone throws a ball at a cyclist." in request.user
    example = request.user[request.user.index("{") :]
    assert parse_caption(example).ok  # the shape shown to the model is readable by the parser
    for word in ("identity", "age", "race"):
        assert re.search(rf"\b{word}\b", request.system)


def test_empty_context_is_said_not_left_blank():
    assert "Scene context: none given" in grounding_request(1, "  ").user


def test_chat_messages_put_images_before_the_text():
    request = caption_request("ctx")
    messages = chat_messages(request, [{"type": "image"}, {"type": "image"}])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert [p["type"] for p in messages[1]["content"]] == ["image", "image", "text"]
