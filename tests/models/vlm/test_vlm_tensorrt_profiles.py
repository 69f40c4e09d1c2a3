"""The ONNX VLM backend gives onnxruntime's TensorRT provider one shape profile per graph that covers
prefill and every decoding step, so engines are built once rather than per decoding length."""

from __future__ import annotations

import pytest
from tiny_models import views

from vigil360.models.vlm.backends.onnx_backend import MAX_CONTEXT, tensorrt_profiles
from vigil360.models.vlm.interfaces import VlmRequest

CONFIG = {"image_size": 512, "hidden_size": 576, "kv_heads": 3, "head_dim": 64}
PAST = ["past.0.key", "past.0.value"]


def _inside(shape, profile) -> bool:
    low, _, high = profile
    return len(shape) == len(low) and all(a <= s <= c for a, s, c in zip(low, shape, high, strict=True))


@pytest.mark.parametrize(("prompt", "new_tokens"), [(375, 32), (8 * 64 + 40, 200), (3000, 1000)])
def test_decoder_profile_covers_prefill_and_every_step(prompt: int, new_tokens: int) -> None:
    profile = tensorrt_profiles(CONFIG, PAST)["decoder"]
    # Prefill: the whole prompt over a one-slot (masked) past.
    steps = [(prompt, 1)] + [(1, prompt + k) for k in range(1, new_tokens)]
    for seq, past in steps:
        shapes = {"inputs_embeds": (1, seq, 576), "attention_mask": (1, past + seq), "position_ids": (1, seq),
                  "past.0.key": (1, 3, past, 64), "past.0.value": (1, 3, past, 64)}
        assert all(_inside(shape, profile[name]) for name, shape in shapes.items()), (seq, past)
    assert not _inside((1, 3, MAX_CONTEXT + 1, 64), profile["past.0.key"])  # beyond the stated range


def test_backend_hands_the_profiles_to_its_sessions(tiny_onnx_dir, monkeypatch) -> None:
    from vigil360.models.vlm.backends import onnx_backend

    seen = {}
    real = onnx_backend.create_session

    def recording(path, providers, threads, trt_cache_dir, trt_profiles):
        seen[path.name] = trt_profiles
        return real(path, "cpu", threads)

    monkeypatch.setattr(onnx_backend, "create_session", recording)
    backend = onnx_backend.OnnxBackend(tiny_onnx_dir, providers="auto", threads=1)
    decoder_inputs = {n.name for n in backend.decoder.get_inputs()}
    decoder_file = backend.manifest.file("decoder").path
    assert set(seen[decoder_file]) == decoder_inputs  # every dynamic input has a range
    assert set(seen[backend.manifest.file("vision").path]) == {"pixel_values"}


def _tensorrt_ep() -> bool:
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _tensorrt_ep(), reason="onnxruntime's TensorRT execution provider is not in this build")
def test_tensorrt_builds_one_engine_for_all_decoding_lengths(tiny_onnx_dir, tmp_path) -> None:
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend

    backend = OnnxBackend(tiny_onnx_dir, providers="tensorrt", threads=1, trt_cache_dir=tmp_path)

    def engines() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.suffix == ".engine"}

    assert backend.generate(VlmRequest(images=views(1), system="", user="x", max_new_tokens=3)).new_tokens >= 1
    built = engines()
    assert built
    for count, tokens in ((2, 17), (3, 40)):  # other prompt lengths, longer caches, more images
        assert backend.generate(VlmRequest(images=views(count), system="", user="x", max_new_tokens=tokens)).new_tokens
    assert engines() == built  # nothing rebuilt or added for the new shapes
