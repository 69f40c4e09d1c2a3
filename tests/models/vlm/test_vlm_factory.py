"""Building a Grounder / Captioner from config, for each backend."""

from __future__ import annotations

import pytest
from openai_loopback import LoopbackServer, Scripted, ServerState
from tiny_models import views

from vigil360.config import Settings, VlmBackendConfig, VlmConfig
from vigil360.errors import UserError
from vigil360.models.vlm.factory import build_backend, build_captioner, build_grounder, clear_backend_cache
from vigil360.models.vlm.interfaces import Captioner, Grounder


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_backend_cache()
    yield
    clear_backend_cache()


def test_each_backend_builds_and_runs(tiny_vlm_dir, tiny_onnx_dir, transformers_backend):
    with LoopbackServer(ServerState(backend=transformers_backend)) as server:
        server.state.script.append(Scripted(text='{"appearance": "a blue bag", "motion": "lies on the bench"}'))
        for backend in [{"backend": "transformers", "model_dir": str(tiny_vlm_dir)},
                        {"backend": "onnx", "onnx_dir": str(tiny_onnx_dir), "providers": "cpu"},
                        {"backend": "http", "http": {"base_url": server.base_url, "model": "tiny"}}]:
            config = VlmConfig(grounder={**backend, "max_new_tokens": 8}, captioner={**backend, "max_new_tokens": 8})
            grounder, captioner = build_grounder(config), build_captioner(config)
            assert isinstance(grounder, Grounder) and isinstance(captioner, Captioner)
            assert grounder.backend is captioner.backend  # one model loaded for both roles
            result = captioner.describe(views(1), "ctx")
            assert result.ok or result.reason
        assert result.ok and result.caption.appearance == "a blue bag"  # the scripted HTTP answer


@pytest.mark.parametrize(("fields", "message"), [
    ({"backend": "transformers"}, "needs model_dir"),
    ({"backend": "onnx"}, "needs onnx_dir"),
])
def test_incomplete_config_is_a_clear_error(fields, message):
    with pytest.raises(UserError, match=message):
        build_backend(VlmBackendConfig(**fields))


def test_settings_carry_the_vlm_section_and_refuse_typos():
    settings = Settings.model_validate({"vlm": {"captioner": {"backend": "http", "http": {"timeout_s": 5}}}})
    assert settings.vlm.captioner.http.timeout_s == 5 and settings.vlm.grounder.backend == "onnx"
    with pytest.raises(ValueError, match="max_new_token"):
        Settings.model_validate({"vlm": {"grounder": {"max_new_token": 5}}})
