"""`vigil360 export vlm` for Qwen2.5-VL / Qwen3-VL folders: graphs, parity checks, manifest.

Files: `vision.onnx` (patch-level tower, grid-agnostic; see `vlm_qwen_graphs.py`), `decoder.onnx`
(inputs_embeds + mask + 3D positions + past [+ deepstack] -> last logits + present),
`embed_tokens.npy`, the tokenizer / image-processor files and `manifest.json` - the contract the
Idefics3 export writes. Parity, checked on every export with two images of different sizes (so two
grids neither seen at export): vision features within 1e-5 x max(1, max |feature|) of the
transformers tower (deepstack features too), first-step logits within 1e-4 x max(1, max |logit|),
and greedy ONNX Runtime tokens identical to `generate` for `parity_tokens` tokens.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vigil360.errors import UserError
from vigil360.export.vlm_quantize import DecoderWeights

FEATURE_TOLERANCE = 1e-5
LOGIT_TOLERANCE = 1e-4


def parity_request(tokens: int, seed: int = 7):
    """Two random 'views' of different sizes and aspect ratios, and a fixed caption request."""
    import numpy as np

    from vigil360.models.vlm.interfaces import VlmRequest

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((150, 210, 3), (120, 90, 3))]
    return VlmRequest(images=images, system="", user="Describe the outlined person.", max_new_tokens=tokens)


def _torch_vision(model, inputs: dict):
    import numpy as np
    import torch

    with torch.no_grad():
        output = model.model.get_image_features(pixel_values=inputs["pixel_values"],
                                                image_grid_thw=inputs["image_grid_thw"])
    features = torch.cat(list(output.pooler_output)).numpy()
    deepstack = getattr(output, "deepstack_features", None)
    if deepstack:
        return features, np.stack([torch.cat(list(per_layer)).numpy() for per_layer in deepstack])
    return features, None


def _config(model, reference) -> dict:
    from vigil360.export.vlm_qwen_graphs import cache_shape

    text, vision = model.config.text_config, model.config.vision_config
    kv_heads, head_dim = cache_shape(text)
    config = {"family": model.config.model_type, "image_token_id": model.config.image_token_id,
              "eos_token_ids": sorted(reference.eos_ids()), "num_layers": text.num_hidden_layers,
              "kv_heads": kv_heads, "head_dim": head_dim, "hidden_size": text.hidden_size,
              "vocab_size": text.vocab_size, "merge_size": vision.spatial_merge_size, "patch_size": vision.patch_size}
    if config["family"] == "qwen2_5_vl":
        config.update(window_size=vision.window_size, full_attention_layers=list(vision.fullatt_block_indexes))
    else:
        config.update(position_grid_side=int(vision.num_position_embeddings**0.5),
                      deepstack_layers=list(vision.deepstack_visual_indexes))
    return config


def export_qwen_vlm(model_dir: str | Path, out: str | Path, parity_tokens: int = 32, threads: int | None = None,
                    decoder_weights: DecoderWeights = "fp32") -> Path:
    """Export, check parity, write the manifest; returns its path. Fails on a parity miss."""
    import numpy as np
    import torch

    from vigil360.export.vlm import _PROCESSOR_FILES, _opset, _signature, quantize_decoder
    from vigil360.export.vlm_qwen_graphs import export_decoder, export_vision
    from vigil360.models.manifest import Manifest, describe_file, package_versions, write_manifest
    from vigil360.models.runtime import create_session
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend, vision_inputs
    from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend
    from vigil360.models.vlm.random_init import weights_provenance

    reference = QwenTransformersBackend(model_dir, threads=threads)
    model, folder = reference.model, reference.model_dir
    config = _config(model, reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    request = parity_request(parity_tokens)
    # The graph is traced on a third grid that the parity images do not share.
    example = reference.preprocessor.prepare(VlmRequest(images=[np.zeros((100, 100, 3), np.uint8)], system="",
                                                        user="x"))
    with torch.inference_mode(False), torch.no_grad():
        export_vision(model, out / "vision.onnx",
                      vision_inputs(config, example.pixel_values, example.image_grid_thw))
        export_decoder(model, out / "decoder.onnx")
    np.save(out / "embed_tokens.npy", model.get_input_embeddings().weight.detach().float().numpy())
    for name in _PROCESSOR_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)

    files = []
    for name, role in (("vision.onnx", "vision"), ("decoder.onnx", "decoder")):
        signature = _signature(create_session(out / name, "cpu", threads=1))
        files.append(describe_file(out, name, role, inputs=signature[0], outputs=signature[1]))
        if (out / f"{name}.data").is_file():
            files.append(describe_file(out, f"{name}.data", f"{role}_weights", format="data"))
    files.append(describe_file(out, "embed_tokens.npy", "embed_tokens", format="data"))
    files += [describe_file(out, name, "processor", format="data") for name in _PROCESSOR_FILES
              if (out / name).is_file()]
    manifest = Manifest(kind="vlm", model=folder.name, family=config["family"], weights=weights_provenance(folder),
                        config=config, opset=_opset(out / "decoder.onnx"), precision="fp32", files=files,
                        versions=package_versions(),
                        notes={"parity_prompt": "2 random views of 210x150 and 90x120 px (seed 7) + a caption request",
                               "decoding": "greedy; prefill uses a masked one-slot past",
                               "vision": "one graph for every image grid: grid-dependent indices come from the host"})
    write_manifest(out, manifest)

    runtime = QwenOnnxBackend(out, providers="cpu", threads=threads, verify=False)
    torch_inputs = reference.prepare(request)
    onnx_inputs = runtime.prepare(request)
    problems = []
    torch_features, torch_deepstack = _torch_vision(model, torch_inputs)
    onnx_features, onnx_deepstack = runtime.encode_images(onnx_inputs)
    vision = manifest.file("vision")
    pairs = {"image_features": (onnx_features, torch_features)}
    if torch_deepstack is not None:
        pairs["deepstack_features"] = (onnx_deepstack, torch_deepstack)
    for key, (got, want) in pairs.items():
        diff, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
        vision.parity_max_abs[key] = diff
        vision.metadata[f"{key}_max_abs_value"] = f"{scale:.6g}"
        if diff > FEATURE_TOLERANCE * max(1.0, scale):
            problems.append(f"{key} max abs diff {diff:.2e} > {FEATURE_TOLERANCE:g} x max(1, {scale:.3g})")
    with torch.no_grad():
        torch_logits = model(**torch_inputs).logits[0, -1].float().numpy()
    logit_diff = float(np.abs(runtime.prefill_logits(onnx_inputs) - torch_logits).max())
    decoder = manifest.file("decoder")
    decoder.parity_max_abs["first_step_logits"] = logit_diff
    logit_scale = float(np.abs(torch_logits).max())
    if logit_diff > LOGIT_TOLERANCE * max(1.0, logit_scale):
        problems.append(f"first-step logits max abs diff {logit_diff:.2e} > {LOGIT_TOLERANCE:g} x max(1, "
                        f"{logit_scale:.3g})")
    expected = reference.generate_ids(torch_inputs, parity_tokens)
    got = runtime.decode_ids(onnx_inputs, parity_tokens)
    decoder.metadata.update({"greedy_tokens_match_generate": str(got == expected).lower(),
                             "parity_tokens": str(len(expected)), "distinct_parity_tokens": str(len(set(expected))),
                             "image_grids_checked": str(torch_inputs["image_grid_thw"].tolist())})
    if got != expected:
        problems.append(f"greedy tokens differ from generate: onnx {got} vs torch {expected}")
    manifest.notes["parity"] = f"failed: {'; '.join(problems)}" if problems else "passed"
    path = write_manifest(out, manifest)
    if problems:
        raise UserError(f"{out}: parity check failed ({'; '.join(problems)}); manifest written for inspection")
    if decoder_weights != "fp32":
        path = quantize_decoder(out, manifest, threads, _agreement_with(expected, request), decoder_weights,
                                runtime_class=QwenOnnxBackend)
    return path


def quantized_from_export(model_dir: str | Path, fp32_dir: str | Path, out: str | Path,
                          decoder_weights: DecoderWeights, parity_tokens: int = 12,
                          threads: int | None = None) -> Path:
    """A copy of a checked fp32 export with a weight-quantised decoder, without exporting again.

    Files are copied, not hard-linked: onnx refuses external data with several links (a guard
    against hard-link attacks).
    """
    from vigil360.export.vlm import quantize_decoder
    from vigil360.models.manifest import load_manifest
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend
    from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend

    manifest = load_manifest(fp32_dir, kind="vlm")
    if manifest.precision != "fp32" or manifest.notes.get("parity") != "passed":
        raise UserError(f"{fp32_dir}: needs an fp32 export whose parity check passed")
    out = Path(out)
    shutil.copytree(fp32_dir, out)
    reference = QwenTransformersBackend(model_dir, threads=threads)
    request = parity_request(parity_tokens)
    expected = reference.generate_ids(reference.prepare(request), parity_tokens)
    return quantize_decoder(out, manifest, threads, _agreement_with(expected, request), decoder_weights,
                            runtime_class=QwenOnnxBackend)


def _agreement_with(expected: list[int], request):
    from vigil360.export.vlm import token_agreement

    return lambda runtime: token_agreement(expected, runtime.decode_ids(runtime.prepare(request), len(expected)))
