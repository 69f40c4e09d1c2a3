"""Grounder and Captioner through the transformers and ONNX Runtime backends on a tiny random model.

A random model answers gibberish, so these tests check the code path - prompt -> tokens -> parse ->
a result with a reason - and that ONNX Runtime decodes exactly what transformers generates.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import TINY_IMAGE_SIZE, views

from vigil360.errors import MissingModelError, UserError
from vigil360.models.vlm.interfaces import Captioner, Grounder, VlmRequest
from vigil360.models.vlm.prompts import caption_request, grounding_request
from vigil360.models.vlm.tasks import VlmCaptioner, VlmGrounder


def _request(count=2, tokens=16, user="Find the perpetrator and the victim."):
    return VlmRequest(images=views(count, seed=11), system="You help.", user=user, max_new_tokens=tokens)


def test_prompt_holds_one_image_block_per_view(transformers_backend):
    inputs = transformers_backend.prepare(_request(count=3))
    tokenizer = transformers_backend.tokenizer
    ids = inputs["input_ids"][0].tolist()
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert ids.count(image_id) == 3 * transformers_backend.processor.image_seq_len
    assert tuple(inputs["pixel_values"].shape[:2]) == (1, 3)
    text = tokenizer.decode(ids)
    assert text.endswith("Assistant:") and "Find the perpetrator" in text


@pytest.mark.parametrize("backend_name", ["transformers_backend", "onnx_backend"])
def test_grounder_and_captioner_run_end_to_end(backend_name, request, tmp_path):
    backend = request.getfixturevalue(backend_name)
    grounder = VlmGrounder(backend, max_new_tokens=12, debug_dir=tmp_path / "seen")
    captioner = VlmCaptioner(backend, max_new_tokens=12, debug_dir=tmp_path / "seen")
    assert isinstance(grounder, Grounder) and isinstance(captioner, Captioner)
    shots = views(2, seed=5)
    result = grounder.ground(shots, "A person grabs a bag.")
    generation = grounder.last_generation
    assert generation.new_tokens >= 1 and generation.first_token_s is not None
    assert result.raw_text == generation.text
    # Random weights: whatever came out is either read or rejected with a reason - never silently empty.
    assert result.entities or result.rejected
    caption = captioner.describe(views(3, seed=6), "A person grabs a bag.")
    assert caption.ok or caption.reason
    written = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert written == [
        "caption_0000_00.png",
        "caption_0000_01.png",
        "caption_0000_02.png",
        "grounding_0000_00.png",
        "grounding_0000_01.png",
    ]


def _parity(transformers_backend, runtime, request):
    from vigil360.export.vlm import decode_parity

    reference = transformers_backend.generate_logits(transformers_backend.prepare(request), 32, ignore_eos=True)
    return decode_parity(reference, runtime, request)


def test_onnx_decoding_matches_generate_token_and_logits_per_step(transformers_backend, onnx_backend):
    from vigil360.export.vlm import LOGIT_TOLERANCE, MIN_DISTINCT_TOKENS

    # A different prompt and image count from the export's own parity check.
    request = _request(count=3, tokens=32, user="Describe the outlined person and what they do.")
    parity = _parity(transformers_backend, onnx_backend, request)
    assert len(parity.expected) == 32 and parity.tokens_match
    # A varied sequence, so the KV cache path is really exercised (one repeated token proves nothing).
    assert parity.distinct_tokens >= MIN_DISTINCT_TOKENS
    assert parity.logits_within(LOGIT_TOLERANCE), (parity.max_logit_diff, parity.logit_scale)


class _Drifting:
    """The ONNX backend with its logits scaled by 1.01: every greedy choice stays the same."""

    def __init__(self, runtime):
        self.runtime = runtime

    def prepare(self, request):
        return self.runtime.prepare(request)

    def decode_logits(self, inputs, tokens, ignore_eos=False):
        for token, logits in self.runtime.decode_logits(inputs, tokens, ignore_eos=ignore_eos):
            yield token, logits * np.float32(1.01)


def test_parity_check_fails_on_a_logit_drift_that_keeps_the_tokens(transformers_backend, onnx_backend):
    from vigil360.export.vlm import LOGIT_TOLERANCE

    parity = _parity(transformers_backend, _Drifting(onnx_backend), _request(count=1, tokens=32))
    assert parity.tokens_match and not parity.logits_within(LOGIT_TOLERANCE)


def test_onnx_vision_matches_torch(transformers_backend, onnx_backend):
    import torch

    from vigil360.export.vlm import _wrappers

    request = _request(count=2)
    pixels = onnx_backend.prepare(request)["pixel_values"]
    vision, _ = _wrappers(transformers_backend.model)
    with torch.no_grad():
        expected = vision(torch.from_numpy(pixels)).numpy()
    assert np.abs(onnx_backend.encode_images(pixels) - expected).max() <= 1e-5


@pytest.mark.parametrize("backend_name", ["transformers_backend", "onnx_backend"])
def test_stream_and_generate_agree(backend_name, request):
    backend = request.getfixturevalue(backend_name)
    req = _request(count=1, tokens=10)
    generation = backend.generate(req)
    assert "".join(backend.stream(req)) == generation.text
    assert generation.stop in ("eos", "budget")
    if generation.stop == "budget":
        assert generation.new_tokens == 10


@pytest.mark.parametrize("backend_name", ["transformers_backend", "onnx_backend"])
def test_non_square_views_are_stretched_to_the_square_input(backend_name, request):
    # Stretched, not letterboxed, so 0..1000 box coordinates map back to the view exactly.
    backend = request.getfixturevalue(backend_name)
    wide = np.zeros((TINY_IMAGE_SIZE, TINY_IMAGE_SIZE * 2, 3), np.uint8)
    wide[:, TINY_IMAGE_SIZE:] = 255  # right half white
    pixels = np.asarray(backend.prepare(VlmRequest(images=[wide], system="", user="x"))["pixel_values"])
    assert pixels.shape[-2:] == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    row = pixels.reshape(-1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)[0, 0, TINY_IMAGE_SIZE // 2]
    assert row[2] < 0 < row[-3]  # dark then bright, split at the middle: no padding band


def test_bad_views_are_refused_before_the_model_runs(transformers_backend):
    grounder = VlmGrounder(transformers_backend)
    with pytest.raises(UserError, match="no views"):
        grounder.ground([], "ctx")
    with pytest.raises(UserError, match=r"views\[0\]: expected uint8"):
        grounder.ground([np.zeros((8, 8, 3), np.float32)], "ctx")


def test_missing_model_folders_name_what_to_fetch(tmp_path):
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    from vigil360.models.vlm.backends.transformers_backend import TransformersBackend

    with pytest.raises(MissingModelError, match="huggingface-cli download"):
        TransformersBackend(tmp_path)
    with pytest.raises(MissingModelError, match="export"):
        OnnxBackend(tmp_path)


def test_prompts_reach_the_model_unchanged(transformers_backend):
    for request in (grounding_request(2, "ctx"), caption_request("ctx")):
        full = VlmRequest(images=views(1), system=request.system, user=request.user)
        text = transformers_backend.tokenizer.decode(transformers_backend.prepare(full)["input_ids"][0])
        assert request.user.split("\n")[-1] in text and request.system in text
