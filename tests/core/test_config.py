from __future__ import annotations

import json

import pytest

from vigil360.config import Settings
from vigil360.errors import UserError


def test_defaults_suit_a_chest_mounted_camera():
    assert Settings().camera.height_m == pytest.approx(1.2)


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"camera": {"hieght_m": 1.5}}))
    with pytest.raises(UserError, match=r"camera\.hieght_m"):
        Settings.from_file(path)


def test_out_of_range_value_is_rejected(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"camera": {"height_m": 12}}))
    with pytest.raises(UserError, match=r"camera\.height_m"):
        Settings.from_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="settings file not found"):
        Settings.from_file(tmp_path / "nope.json")
