"""`vigil360 models vlm-*` by hand: what a person runs to see what the model saw and said."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from tiny_models import views

from vigil360.cli import main
from vigil360.models.vlm.factory import clear_backend_cache


def _run(args, capsys) -> dict:
    try:
        main(args)
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    return json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_backend_cache()
    yield
    clear_backend_cache()


def test_ground_writes_the_views_it_sent(tiny_vlm_dir, tmp_path, capsys):
    paths = []
    for index, view in enumerate(views(2)):
        paths.append(str(tmp_path / f"view{index}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
    result = _run(["models", "vlm-ground", *paths, "--context", "a bag is grabbed", "--backend", "transformers",
                   "--model-dir", str(tiny_vlm_dir), "--debug-dir", str(tmp_path / "seen")], capsys)
    assert set(result) == {"ok", "entities", "rejected", "repairs", "raw_text"}
    assert result["entities"] or result["rejected"]
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["grounding_0000_00.png", "grounding_0000_01.png"]


def test_describe_highlights_the_instance(tiny_onnx_dir, tmp_path, capsys):
    frame = np.full((120, 160, 3), 180, np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:100, 60:90] = 255
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    result = _run(["models", "vlm-describe", "--frame", str(tmp_path / "f.png"), "--mask", str(tmp_path / "m.png"),
                   "--backend", "onnx", "--onnx-dir", str(tiny_onnx_dir), "--debug-dir", str(tmp_path / "seen")],
                  capsys)
    assert result["ok"] or result["reason"]
    seen = cv2.imread(str(tmp_path / "seen" / "caption_0000_00.png"))
    assert seen.shape[0] == seen.shape[1]  # the centred square crop
    centre, corner = seen[seen.shape[0] // 2, seen.shape[1] // 2], seen[2, 2]
    assert centre.mean() > corner.mean() + 50  # the instance is lit, its surroundings dimmed


def test_random_init_command(tmp_path, capsys):
    try:
        main(["models", "vlm-random-init", "--out", str(tmp_path / "m")])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    assert "random weights" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["_vigil360_weights"].startswith("random-init")
