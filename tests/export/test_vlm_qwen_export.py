"""`vigil360 export vlm` on tiny random-weights Qwen2.5-VL and Qwen3-VL: parity, grid changes, grounding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vigil360.models.manifest import load_manifest

pytestmark = pytest.mark.slow
FAMILIES = ["qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """family -> (model folder, export folder); one CLI export per family."""
    import torch

    from vigil360.cli import main
    from vigil360.models.vlm.qwen.random_init import write_random_qwen

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("qwen")
    folders = {}
    for family in FAMILIES:
        model_dir = write_random_qwen(root / family, f"{family}-tiny", seed=1)
        out = root / f"{family}-onnx"
        try:
            main(["export", "vlm", "--model-dir", str(model_dir), "--out", str(out), "--threads", "1",
                  "--parity-tokens", "32"])
        except SystemExit as exit_:
            assert exit_.code in (0, None)
        folders[family] = (model_dir, out)
    return folders


@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_transformers_token_for_token(exports, family):
    manifest = load_manifest(exports[family][1], kind="vlm")  # re-hashes every file
    assert manifest.family == family and manifest.weights.startswith("random-init, seed 1")
    assert manifest.notes["parity"] == "passed"
    vision, decoder = manifest.file("vision"), manifest.file("decoder")
    for key, diff in vision.parity_max_abs.items():
        assert diff <= 1e-5 * max(1.0, float(vision.metadata[f"{key}_max_abs_value"]))
    assert decoder.metadata["greedy_tokens_match_generate"] == "true"
    assert decoder.metadata["parity_tokens"] == "32"
    assert int(decoder.metadata["distinct_parity_tokens"]) >= 8  # a varied stream, not one repeated token
    assert "first_step_logits" in decoder.parity_max_abs
    grids = decoder.metadata["image_grids_checked"]
    assert grids.count("[1,") == 2 and len(set(grids.split("], ["))) == 2  # two different grids
    names = [spec.name for spec in decoder.inputs]
    assert names[:3] == ["inputs_embeds", "attention_mask", "position_ids"]
    assert ("deepstack" in names) == (family == "qwen3_vl")
    assert [d for d in decoder.inputs[2].shape][0] == 3  # M-RoPE: (time, row, col) positions


@pytest.mark.parametrize("family", FAMILIES)
def test_new_image_sizes_run_through_the_same_graphs(exports, family):
    """Sizes neither the export trace nor its parity check used, against transformers' generate."""
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend
    from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend

    model_dir, out = exports[family]
    rng = np.random.default_rng(11)
    request = VlmRequest(images=[rng.integers(0, 256, (70, 260, 3), dtype=np.uint8),
                                 rng.integers(0, 256, (200, 130, 3), dtype=np.uint8)],
                         system="You describe scenes.", user="What happens?", max_new_tokens=12)
    runtime = QwenOnnxBackend(out, providers="cpu", threads=1)
    reference = QwenTransformersBackend(model_dir, threads=1)
    inputs = runtime.prepare(request)
    assert inputs.image_grid_thw.tolist() not in ([[1, 10, 16], [1, 8, 6]], [[1, 10, 14], [1, 8, 6]])
    assert runtime.decode_ids(inputs, 12) == reference.generate_ids(reference.prepare(request), 12)
    streamed = "".join(runtime.stream(request))
    generation = runtime.generate(request)
    # Streaming holds back a trailing incomplete UTF-8 sequence (random weights produce some).
    assert streamed and generation.text.startswith(streamed) and generation.new_tokens <= 12


@pytest.mark.parametrize(("family", "reply", "expected_box"), [
    # Qwen2.5-VL: pixels of the resized image; a 200x100 view is fed as 196x112 (multiples of 28).
    ("qwen2_5_vl", '```json\n[{"bbox_2d": [49, 0, 98, 112], "label": "person", "role": "perpetrator"}]\n```',
     (50.0, 0.0, 100.0, 100.0)),
    # Qwen3-VL: 0..1000 on both axes whatever the size.
    ("qwen3_vl", '```json\n[{"bbox_2d": [250, 0, 500, 1000], "label": "person", "role": "perpetrator"}]\n```',
     (50.0, 0.0, 100.0, 100.0)),
])
def test_onnx_grounding_reads_the_familys_boxes(exports, family, reply, expected_box):
    from vigil360.models.vlm.interfaces import Generation
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend
    from vigil360.models.vlm.tasks import VlmGrounder

    runtime = QwenOnnxBackend(exports[family][1], providers="cpu", threads=1)
    sent = []

    def scripted(request):  # the model's reply is scripted; prompt, frames and parsing are the backend's
        sent.append(request)
        return Generation(text=reply, new_tokens=20, stop="eos", total_s=0.0)

    runtime.generate = scripted
    view = np.zeros((100, 200, 3), np.uint8)
    result = VlmGrounder(runtime).ground([view], "someone grabs a bag")
    assert "bbox_2d" in sent[0].user and "JSON format" in sent[0].user
    assert ("0 to 1000" in sent[0].user) == (family == "qwen3_vl")
    assert result.rejected == [] and len(result.entities) == 1
    entity = result.entities[0]
    assert entity.role == "perpetrator" and entity.label == "person"
    np.testing.assert_allclose(entity.box_xyxy, expected_box, atol=1e-6)
    assert dataclasses.replace(sent[0], images=[]).images == []


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_quantised_decoder_records_its_agreement(exports, tmp_path, weights):
    import onnx

    from vigil360.export.vlm_qwen import quantized_from_export
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend

    model_dir, fp32 = exports["qwen2_5_vl"]
    out = tmp_path / weights
    quantized_from_export(model_dir, fp32, out, weights, parity_tokens=8, threads=1)
    manifest = load_manifest(out, kind="vlm")
    decoder = manifest.file("decoder")
    assert manifest.precision == weights and decoder.path == f"decoder_{weights}.onnx"
    assert not (out / "decoder.onnx").exists() and (fp32 / "decoder.onnx").is_file()  # the fp32 export is kept
    assert decoder.metadata["fp32_greedy_tokens_match_generate"] == "true"
    assert decoder.metadata["tokens_agreeing_before_first_difference"].endswith("/8")
    ops = {node.op_type for node in onnx.load(str(out / decoder.path)).graph.node}
    assert ops & ({"MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLinear"} if weights == "int8"
                  else {"MatMulNBits"})
    runtime = QwenOnnxBackend(out, providers="cpu", threads=1)
    assert runtime.generate(dataclasses.replace(_request(), max_new_tokens=3)).new_tokens >= 1


def _request():
    from vigil360.models.vlm.interfaces import VlmRequest

    return VlmRequest(images=[np.zeros((64, 90, 3), np.uint8)], system="", user="x")


def test_fp16_is_refused_for_qwen(tmp_path):
    from vigil360.errors import UserError
    from vigil360.export.vlm import export_vlm

    (tmp_path / "config.json").write_text('{"model_type": "qwen3_vl"}')
    with pytest.raises(UserError, match="fp16"):
        export_vlm(tmp_path, tmp_path / "out", fp16=True)


def test_a_failed_or_incomplete_export_is_refused(exports, tmp_path):
    import json
    import shutil

    from vigil360.errors import UserError
    from vigil360.models.vlm.factory import load_onnx_backend

    out = tmp_path / "copy"
    shutil.copytree(exports["qwen3_vl"][1], out)
    manifest_path = out / "manifest.json"
    intact = json.loads(manifest_path.read_text())
    assert type(load_onnx_backend(out, providers="cpu")).__name__ == "QwenOnnxBackend"
    failed = {**intact, "notes": {**intact["notes"], "parity": "failed: first-step logits differ"}}
    manifest_path.write_text(json.dumps(failed))
    with pytest.raises(UserError, match="failed its parity check"):
        load_onnx_backend(out, providers="cpu")
    incomplete = {**intact, "config": {k: v for k, v in intact["config"].items() if k != "merge_size"}}
    manifest_path.write_text(json.dumps(incomplete))
    with pytest.raises(UserError, match="merge_size"):
        load_onnx_backend(out, providers="cpu")


def test_latency_bench_reports_both_backends(exports):
    from vigil360.bench.latency_vlm_qwen import markdown_qwen, measure_qwen

    model_dir, out = exports["qwen2_5_vl"]
    report = measure_qwen(model_dir, {"onnxruntime": out}, images=1, image_size=64, tokens=4, threads=1, warmup=0,
                          repeats=2)
    assert set(report["results"]) == {"transformers", "onnxruntime"}
    for figures in report["results"].values():
        assert len(figures["runs"]["per_token_ms"]) == 2
        assert figures["per_token_ms"]["min"] <= figures["per_token_ms"]["median"] <= figures["per_token_ms"]["max"]
    assert report["results"]["transformers"]["per_token_speedup_vs_transformers"] == 1.0
    assert report["family"] == "qwen2_5_vl" and report["weights"].startswith("random-init")
    table = markdown_qwen(report)
    assert "RANDOM WEIGHTS" in table and "| onnxruntime |" in table
