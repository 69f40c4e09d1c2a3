"""`vigil360 export vlm` on a tiny random-weights Idefics3: graphs, manifest, parity, refusals."""

from __future__ import annotations

import json

import pytest

from vigil360.cli import main
from vigil360.errors import MissingModelError, UserError
from vigil360.models.manifest import load_manifest
from vigil360.models.vlm.random_init import write_random_vlm


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return write_random_vlm(tmp_path_factory.mktemp("vlm") / "tiny", "idefics3-tiny", seed=1)


@pytest.fixture(scope="module")
def exported(tiny_dir, tmp_path_factory):
    """One CLI export shared by the tests here (an export is the slow part)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("vlm_onnx") / "onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            main(["export", "vlm", "--model-dir", str(tiny_dir), "--out", str(out), "--threads", "1"])
        except SystemExit as exit_:  # the CLI's way of ending a successful command
            assert exit_.code in (0, None)
    return out, printed.getvalue()


def test_cli_exports_with_parity_and_a_manifest(exported):
    out, printed = exported
    assert "greedy tokens match generate: true" in printed
    manifest = load_manifest(out, kind="vlm")  # re-hashes every file
    assert manifest.family == "idefics3" and manifest.weights.startswith("random-init, seed 1")
    vision, decoder = manifest.file("vision"), manifest.file("decoder")
    assert vision.parity_max_abs["image_features"] <= 1e-5
    assert decoder.metadata["greedy_tokens_match_generate"] == "true"
    # 32 tokens of which at least 8 distinct: a sequence that could have failed.
    assert decoder.metadata["parity_tokens"] == "32" and int(decoder.metadata["distinct_parity_tokens"]) >= 8
    assert "parity_strength" not in manifest.notes
    diff, scale = (float(decoder.metadata[k]) for k in ("step_logits_max_abs_diff", "step_logits_max_abs_value"))
    assert scale > 0 and diff <= 1e-4 * max(1.0, scale)  # 2 layers: well inside the 1e-3 export bound
    assert vision.inputs[0].name == "pixel_values" and isinstance(vision.inputs[0].shape[0], str)  # dynamic count
    names = [spec.name for spec in decoder.inputs]
    assert names[:3] == ["inputs_embeds", "attention_mask", "position_ids"] and "past.1.value" in names
    assert {g.role for g in manifest.files} >= {"vision", "decoder", "embed_tokens", "processor"}
    assert manifest.config["image_seq_len"] == 4
    assert manifest.notes["parity"] == "passed" and manifest.opset >= 17


def test_a_corrupted_export_is_refused(exported, tmp_path):
    import shutil

    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend

    out = tmp_path / "copy"
    shutil.copytree(exported[0], out)
    OnnxBackend(out, providers="cpu")  # intact: loads
    manifest_path = out / "manifest.json"
    intact = manifest_path.read_text()
    record = json.loads(intact)
    record["notes"]["parity"] = "failed: vision max abs diff 1e-3"
    manifest_path.write_text(json.dumps(record))
    with pytest.raises(UserError, match="failed its parity check"):
        OnnxBackend(out, providers="cpu")
    manifest_path.write_text(intact)
    data = out / "embed_tokens.npy"
    data.write_bytes(data.read_bytes()[:-8])
    with pytest.raises(UserError, match="does not match the sha256"):
        OnnxBackend(out, providers="cpu")


def test_unsupported_family_and_missing_folder_are_clear_errors(tiny_dir, tmp_path):
    from vigil360.export.vlm import export_vlm

    with pytest.raises(MissingModelError, match="no config.json"):
        export_vlm(tmp_path / "nowhere", tmp_path / "out")
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "idefics3"
    with pytest.raises(SystemExit) as exit_:
        main(["export", "vlm", "--model-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 1


def test_fp16_export_runs_and_records_its_parity(tiny_dir, tmp_path):
    import numpy as np

    from vigil360.export.vlm import export_vlm
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    from vigil360.models.vlm.interfaces import VlmRequest

    out = tmp_path / "fp16"
    export_vlm(tiny_dir, out, fp16=True, parity_tokens=4, threads=1)
    manifest = load_manifest(out, kind="vlm")
    assert manifest.precision == "fp16" and manifest.notes["parity"] == "passed"
    assert manifest.file("vision").parity_max_abs["image_features"] <= 5e-2
    assert manifest.file("decoder").metadata["greedy_tokens_match_generate"] in ("true", "false")
    runtime = OnnxBackend(out, providers="cpu")
    image = np.zeros((64, 64, 3), np.uint8)
    assert runtime.prepare(VlmRequest(images=[image], system="", user="x"))["pixel_values"].dtype == np.float16
    assert runtime.generate(VlmRequest(images=[image], system="", user="x", max_new_tokens=3)).new_tokens >= 1


QUANTISED_OPS = {"int8": {"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"}, "int4": {"MatMulNBits"}}


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_quantised_export_swaps_the_decoder_and_records_agreement(tiny_dir, tmp_path, weights):
    import onnx

    from vigil360.export.vlm import export_vlm
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    from vigil360.models.vlm.interfaces import VlmRequest

    out = tmp_path / weights
    export_vlm(tiny_dir, out, decoder_weights=weights, parity_tokens=6, threads=1)
    manifest = load_manifest(out, kind="vlm")
    decoder = manifest.file("decoder")
    assert manifest.precision == weights and decoder.path == f"decoder_{weights}.onnx"
    assert not (out / "decoder.onnx").exists()
    assert decoder.metadata["fp32_greedy_tokens_match_generate"] == "true"
    assert decoder.metadata["tokens_agreeing_before_first_difference"].endswith("/6")
    ops = {node.op_type for node in onnx.load(str(out / decoder.path)).graph.node}
    assert ops & QUANTISED_OPS[weights]
    if weights == "int4":
        assert "Gemm" not in ops  # the LM head is quantised too
    import numpy as np

    runtime = OnnxBackend(out, providers="cpu")
    assert runtime.generate(VlmRequest(images=[np.zeros((64, 64, 3), np.uint8)], system="", user="x",
                                       max_new_tokens=3)).new_tokens >= 1


def test_fp16_and_quantised_weights_together_are_refused(tiny_dir, tmp_path):
    from vigil360.export.vlm import export_vlm

    with pytest.raises(UserError, match="choose one"):
        export_vlm(tiny_dir, tmp_path / "x", fp16=True, decoder_weights="int8")
