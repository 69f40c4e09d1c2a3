"""SAM2 -> four ONNX graphs: the CLI, the manifest, parity with torch (fixed and dynamic shapes), RoPE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vigil360.cli import main as cli_main
from vigil360.errors import UserError
from vigil360.export.sam2_graphs import DEFAULT_OPSET, ROLES, example_inputs, wrapper_for
from vigil360.export.sam2_model import build_model, check_image_size
from vigil360.export.sam2_parity import memory_attention_reference_gap, parity
from vigil360.models.manifest import load_manifest, sha256_file
from vigil360.models.runtime import create_session

pytestmark = pytest.mark.slow

IMAGE_SIZE = 128  # the smallest size Hiera and the decoder handle comfortably: keeps CI fast
PARITY_BOUND = 1e-4


@pytest.fixture(scope="session")
def sam2_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exported once per session through the real CLI (its own folder: other areas' tests share another)."""
    out = tmp_path_factory.getbasetemp() / f"sam2_cli_{IMAGE_SIZE}"
    if not (out / "manifest.json").is_file():
        torch.set_num_threads(2)
        try:
            cli_main(
                [
                    "export",
                    "sam2",
                    "--model",
                    "sam2.1_hiera_tiny",
                    "--random-init",
                    "--seed",
                    "0",
                    "--image-size",
                    str(IMAGE_SIZE),
                    "--out",
                    str(out),
                ]
            )
        except SystemExit as exit_:
            assert exit_.code in (0, None), f"export failed with exit code {exit_.code}"
    return out


@pytest.fixture(scope="module")
def torch_model():
    return build_model("sam2.1_hiera_tiny", IMAGE_SIZE, seed=0)


def test_manifest_lists_four_graphs_with_hashes_shapes_and_parity(sam2_export_dir: Path) -> None:
    manifest = load_manifest(sam2_export_dir, kind="sam2", verify=True)
    assert manifest.model == "sam2.1_hiera_tiny" and manifest.family == "sam2.1"
    assert manifest.weights == "random-init, seed 0"
    assert manifest.image_size == IMAGE_SIZE and manifest.opset == DEFAULT_OPSET
    assert {"torch", "onnxruntime", "sam2", "onnx"} <= set(manifest.versions)
    roles = [g.role for g in manifest.files]
    assert roles == [*ROLES, "constants"]
    for graph in manifest.files:
        path = sam2_export_dir / graph.path
        assert sha256_file(path) == graph.sha256 and path.stat().st_size == graph.size_bytes
        if graph.format == "onnx":
            assert graph.inputs and graph.outputs
            assert graph.parity_max_abs and max(graph.parity_max_abs.values()) <= PARITY_BOUND, (
                graph.parity_max_abs
            )
    attention = manifest.file("memory_attention")
    shapes = {spec.name: spec.shape for spec in attention.inputs}
    assert shapes["memory"][:2] == ["objects", "memories"] and shapes["obj_ptrs"][:2] == [
        "objects",
        "pointers",
    ]
    assert float(manifest.notes["rope_real_vs_complex_max_abs"]) < 1e-5
    assert manifest.config["num_maskmem"] == 7 and manifest.config["max_obj_ptrs_in_encoder"] == 16


def test_changed_file_is_refused(sam2_export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in sam2_export_dir.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    data = bytearray((copy / "memory_encoder.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "memory_encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match"):
        load_manifest(copy, kind="sam2")


def _run_both(folder: Path, model, role: str, args: tuple) -> dict[str, float]:
    module = wrapper_for(model, role)
    session = create_session(folder / f"{role}.onnx", providers="cpu")
    return parity(session, module, args)


@pytest.mark.parametrize(("memories", "pointers"), [(1, 1), (7, 16)])
def test_memory_attention_dynamic_bank_sizes(
    sam2_export_dir: Path, torch_model, memories: int, pointers: int
) -> None:
    args = example_inputs(torch_model, objects=3, memories=memories, pointers=pointers, seed=5)
    figures = _run_both(sam2_export_dir, torch_model, "memory_attention", args["memory_attention"])
    assert figures["conditioned_embed"] <= PARITY_BOUND


def test_decoder_takes_any_point_count_and_mask_prompts(sam2_export_dir: Path, torch_model) -> None:
    args = example_inputs(torch_model, objects=2, points=5, seed=9)["mask_decoder"]
    figures = _run_both(sam2_export_dir, torch_model, "mask_decoder", args)
    assert max(figures.values()) <= PARITY_BOUND


def test_wrapped_memory_attention_equals_sam2_module(torch_model, sam2_export_dir: Path) -> None:
    """The export wrapper (real RoPE, batch-first) against sam2's own MemoryAttention (complex RoPE)."""
    assert memory_attention_reference_gap(torch_model, seed=7) <= 1e-5
    manifest = load_manifest(sam2_export_dir, verify=False)
    assert float(manifest.notes["memory_attention_wrapper_vs_sam2_max_abs"]) <= 1e-5


def _constant_tensors(path: Path) -> list:
    import onnx

    graph = onnx.load(str(path)).graph
    tensors = list(graph.initializer)
    tensors += [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.t.dims]
    return tensors


def test_memory_attention_file_holds_no_rotary_tables(sam2_export_dir: Path, torch_model) -> None:
    """The RoPE cos/sin tables are computed in the graph: no [h*w, head_dim/2] constant, and the
    file is its weights (the exporter used to fold one table copy into each of 64 consumers)."""
    attention = torch_model.memory_attention.layers[0].self_attn
    side = IMAGE_SIZE // torch_model.backbone_stride
    table_shape = [side * side, attention.internal_dim // attention.num_heads // 2]
    tensors = _constant_tensors(sam2_export_dir / "memory_attention.onnx")
    assert [list(t.dims) for t in tensors].count(table_shape) == 0
    # Random-init layers are clones (identical weights the exporter stores once): count distinct ones.
    distinct = {p.detach().numpy().tobytes(): p.numel() * 4 for p in torch_model.memory_attention.parameters()}
    weights = sum(distinct.values()) + torch_model.maskmem_tpos_enc.numel() * 4
    weights += sum(p.numel() * 4 for p in torch_model.obj_ptr_tpos_proj.parameters())
    size = (sam2_export_dir / "memory_attention.onnx").stat().st_size
    assert size < 1.1 * weights, (size, weights)


def test_real_rope_equals_complex_rope(torch_model) -> None:
    from vigil360.export.sam2_wrappers import check_rope_equivalence

    assert check_rope_equivalence(torch_model, batch=2, memories=4, seed=3) < 1e-5


@pytest.mark.parametrize("size", [100, 32, 1000])
def test_bad_image_size_is_a_clear_error(size: int) -> None:
    with pytest.raises(UserError, match="multiple of 32"):
        check_image_size(size)


def test_weights_must_be_chosen_once() -> None:
    with pytest.raises(UserError, match="choose the weights"):
        build_model("sam2.1_hiera_tiny", 128)
    with pytest.raises(UserError, match="unknown SAM2 model"):
        build_model("sam3_giant", 128, seed=0)


def test_non_sam2_checkpoint_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pt"
    torch.save({"model": {"backbone.weight": torch.zeros(1)}}, bogus)
    with pytest.raises(UserError, match="not a SAM2 checkpoint"):
        build_model("sam2.1_hiera_tiny", 128, checkpoint=bogus)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        build_model("sam2.1_hiera_tiny", 128, checkpoint=text)


def test_checkpoint_weights_are_loaded_and_hashed(tmp_path: Path, torch_model, monkeypatch) -> None:
    """A real-format checkpoint (saved from a random-init model) goes through the checkpoint path."""
    path = tmp_path / "tiny.pt"
    torch.save({"model": torch_model.state_dict()}, path)
    model = build_model("sam2.1_hiera_tiny", IMAGE_SIZE, checkpoint=path)
    first = next(iter(torch_model.state_dict()))
    assert torch.equal(model.state_dict()[first], torch_model.state_dict()[first])
    from vigil360.models.checkpoints import checkpoint_weights_label

    assert checkpoint_weights_label(path) == f"sha256:{sha256_file(path)}"


def test_cli_refuses_missing_weights_choice(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["export", "sam2", "--image-size", "128", "--out", "/nonexistent/never"])
    assert exit_.value.code == 1
    assert "choose the weights" in capsys.readouterr().err


def test_manifest_json_is_plain_json(sam2_export_dir: Path) -> None:
    data = json.loads((sam2_export_dir / "manifest.json").read_text())
    assert data["kind"] == "sam2" and np.isfinite(data["files"][0]["parity_max_abs"]["image_embed"])
