"""Fault-injection tests: each failure the loop, the server or the records can meet, injected,
and what the user then gets (alerts go on; the failure is said, counted and written down)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from scripted import BlankSource, ScriptedPerception, write_blank_video  # noqa: E402


@pytest.fixture
def blank_source() -> type[BlankSource]:
    return BlankSource


@pytest.fixture
def scripted_perception() -> type[ScriptedPerception]:
    return ScriptedPerception


@pytest.fixture(scope="session")
def blank_video(tmp_path_factory) -> Path:
    return write_blank_video(tmp_path_factory.mktemp("blank") / "blank.avi")
