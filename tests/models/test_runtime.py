"""onnxruntime provider selection: TensorRT options (engine cache, explicit shape profiles)."""

from __future__ import annotations

import pytest

from vigil360.errors import UserError
from vigil360.models import runtime

PROFILES = {
    "inputs_embeds": ((1, 1, 64), (1, 1, 64), (1, 4096, 64)),
    "past.0.key": ((1, 2, 1, 16), (1, 2, 512, 16), (1, 2, 4096, 16)),
}


@pytest.fixture
def gpu_build(monkeypatch):
    monkeypatch.setattr(runtime, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])


def test_tensorrt_provider_gets_the_shape_profiles_and_cache(gpu_build, tmp_path) -> None:
    chosen = runtime.select_providers("tensorrt", trt_cache_dir=tmp_path, trt_profiles=PROFILES)
    name, options = chosen[0]
    assert name == "TensorrtExecutionProvider" and chosen[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options["trt_profile_min_shapes"] == "inputs_embeds:1x1x64,past.0.key:1x2x1x16"
    assert options["trt_profile_opt_shapes"] == "inputs_embeds:1x1x64,past.0.key:1x2x512x16"
    assert options["trt_profile_max_shapes"] == "inputs_embeds:1x4096x64,past.0.key:1x2x4096x16"
    assert options["trt_engine_cache_enable"] and options["trt_engine_cache_path"] == str(tmp_path)


def test_profiles_touch_only_the_tensorrt_provider(gpu_build) -> None:
    assert runtime.select_providers("cuda", trt_profiles=PROFILES) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert runtime.select_providers("tensorrt")[0] == "TensorrtExecutionProvider"  # no options: plain name


@pytest.mark.parametrize(
    "bad",
    [{"x": ((1, 2), (1, 1), (1, 4))}, {"x": ((1, 2), (1, 2, 3), (1, 4))}, {"x": ((2,), (3,), (2,))}],
)
def test_inconsistent_profiles_are_refused(gpu_build, bad) -> None:
    with pytest.raises(UserError, match="min <= opt <= max"):
        runtime.select_providers("tensorrt", trt_profiles=bad)
