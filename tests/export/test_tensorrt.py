"""TensorRT engines: profiles from the manifest, a clear refusal without a GPU, on a GPU parity with ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil360.errors import UserError
from vigil360.export import tensorrt as trt_export
from vigil360.models.manifest import TensorSpec

NO_GPU = trt_export.gpu_problem()


def test_profiles_cover_every_dynamic_axis_and_keep_fixed_ones() -> None:
    inputs = [
        TensorSpec(name="memory", shape=["objects", "memories", 64, 8, 8], dtype="float32"),
        TensorSpec(name="image_pos", shape=[1, 256, 8, 8], dtype="float32"),
    ]
    shapes = trt_export.profile_shapes(inputs, {"memories": (1, 7, 7)})
    assert shapes["memory"] == ((1, 1, 64, 8, 8), (1, 7, 64, 8, 8), (8, 7, 64, 8, 8))
    assert shapes["image_pos"] == ((1, 256, 8, 8),) * 3


def test_unknown_dynamic_axis_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="no size range for dynamic axis 'frames'"):
        trt_export.profile_shapes([TensorSpec(name="x", shape=["frames", 3], dtype="float32")])


@pytest.mark.skipif(NO_GPU is None, reason="this machine has a GPU: the refusal path does not apply")
def test_without_a_gpu_the_command_stops_with_a_clear_message(tmp_path: Path, capsys) -> None:
    from vigil360.cli import main as cli_main
    from vigil360.models.manifest import Manifest, write_manifest

    write_manifest(
        tmp_path,
        Manifest(kind="sam2", model="sam2.1_hiera_tiny", family="sam2.1", weights="random-init, seed 0"),
    )
    with pytest.raises(SystemExit) as exit_:
        cli_main(["export", "trt", str(tmp_path), "--fp16"])
    assert exit_.value.code == 1
    assert "cannot build TensorRT engines here" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU is not None, reason=f"TensorRT needs an NVIDIA GPU: {NO_GPU}")
def test_engines_match_onnxruntime(tmp_path_factory: pytest.TempPathFactory) -> None:
    from vigil360.export.sam2_cached import ensure_export
    from vigil360.export.sam2_graphs import example_inputs
    from vigil360.export.sam2_model import build_model
    from vigil360.models.manifest import load_manifest
    from vigil360.models.runtime import create_session
    from vigil360.models.tensorrt_runner import EngineGraph

    out = tmp_path_factory.getbasetemp() / "sam2_tiny_128_trt"
    ensure_export(out, image_size=128, seed=0)
    manifest = trt_export.build_engines(out)
    inputs = example_inputs(build_model("sam2.1_hiera_tiny", 128, seed=0))
    for graph in load_manifest(out).files:
        if graph.format != "engine":
            continue
        assert graph.metadata["precision"] == "fp32" and graph.metadata["device"]
        feeds = {
            spec.name: t.numpy()
            for spec, t in zip(manifest.file(graph.role).inputs, inputs[graph.role], strict=True)
        }
        session = create_session(out / f"{graph.role}.onnx", providers="cpu")
        expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
        got = EngineGraph(out / graph.path)(**feeds)
        for name, value in expected.items():
            assert np.abs(got[name] - value).max() < 1e-2, (graph.role, name)
