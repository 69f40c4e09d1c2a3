"""`--vlm DIR|URL` picks the VLM backend from what it is given; a missing folder is an error."""

from __future__ import annotations

import pytest

from vigil360.config import VlmConfig
from vigil360.edge.run_cli import vlm_config_for
from vigil360.errors import MissingModelError


def test_url_means_an_http_server():
    config = vlm_config_for("http://127.0.0.1:9000/v1", VlmConfig())
    assert config.grounder.backend == config.captioner.backend == "http"
    assert config.captioner.http.base_url == "http://127.0.0.1:9000/v1"
    assert config.grounder.max_new_tokens == VlmConfig().grounder.max_new_tokens, "other settings are kept"


def test_folder_with_manifest_is_an_onnx_export_else_a_transformers_model(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "manifest.json").write_text("{}")
    (tmp_path / "hf").mkdir()
    assert vlm_config_for(str(tmp_path / "export"), VlmConfig()).grounder.onnx_dir == str(tmp_path / "export")
    config = vlm_config_for(str(tmp_path / "hf"), VlmConfig())
    assert config.captioner.backend == "transformers" and config.captioner.model_dir == str(tmp_path / "hf")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MissingModelError, match="no such model folder"):
        vlm_config_for(str(tmp_path / "nope"), VlmConfig())
