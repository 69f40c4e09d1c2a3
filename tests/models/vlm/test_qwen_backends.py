"""Qwen-VL through the factory and the grounder with the transformers backend; input faults refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vigil360.errors import MissingModelError, UserError


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    from vigil360.models.vlm.qwen.random_init import write_random_qwen

    return write_random_qwen(tmp_path_factory.mktemp("qwen") / "q3", "qwen3_vl-tiny", seed=0)


def test_factory_builds_the_qwen_backend_and_the_grounder_uses_its_convention(qwen_dir):
    from vigil360.config import VlmBackendConfig
    from vigil360.models.vlm.factory import build_backend, clear_backend_cache
    from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend
    from vigil360.models.vlm.tasks import VlmGrounder

    clear_backend_cache()
    backend = build_backend(VlmBackendConfig(backend="transformers", model_dir=str(qwen_dir), threads=1))
    assert isinstance(backend, QwenTransformersBackend)
    grounder = VlmGrounder(backend, max_new_tokens=6)
    view = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    result = grounder.ground([view], "a bag is grabbed")
    # Random weights: the answer is gibberish, read strictly (nothing invented, a reason given).
    assert result.entities == [] and result.rejected
    assert grounder.last_generation.new_tokens == 6
    prompt = backend.tokenizer.decode(backend.last_inputs.input_ids[0])
    assert "<|vision_start|><|image_pad|>" in prompt and "0 to 1000" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    clear_backend_cache()


def test_prompt_expands_each_image_to_its_token_count(qwen_dir):
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.qwen.inputs import QwenPreprocessor

    pre = QwenPreprocessor(qwen_dir)
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 160, 3), np.uint8)]
    inputs = pre.prepare(VlmRequest(images=images, system="s", user="u"))
    per_image = [int(g.prod()) // 4 for g in inputs.image_grid_thw]
    assert int((inputs.input_ids == pre.image_token_id).sum()) == sum(per_image)
    assert inputs.pixel_values.shape[0] == int(inputs.image_grid_thw.prod(axis=1).sum())
    assert inputs.model_sizes == [(64, 64), (160, 64)]


def test_a_folder_without_chat_template_or_config_is_refused(qwen_dir, tmp_path):
    import shutil

    from vigil360.models.vlm.qwen.inputs import QwenPreprocessor

    with pytest.raises(MissingModelError, match="no config.json"):
        QwenPreprocessor(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(qwen_dir, broken)
    (broken / "chat_template.jinja").unlink()
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="no chat template"):
        QwenPreprocessor(broken)


def test_a_template_without_image_slots_is_refused(qwen_dir):
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.qwen.inputs import QwenPreprocessor

    pre = QwenPreprocessor(qwen_dir)
    pre.tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}{% endfor %}"
    with pytest.raises(UserError, match="0 image slots for 1 images"):
        pre.prepare(VlmRequest(images=[np.zeros((64, 64, 3), np.uint8)], system="", user="x"))
