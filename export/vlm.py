"""`vigil360 export vlm`: an Idefics3 / SmolVLM folder to ONNX graphs onnxruntime can decode with.

Graphs (torch.onnx dynamo exporter):
- `vision.onnx`: pixel_values [images, 3, S, S] -> image_features [images, tokens, hidden]
  (SigLIP encoder + pixel-shuffle connector; image count dynamic).
- `decoder.onnx`: inputs_embeds [1, seq, hidden], attention_mask [1, past+seq], position_ids [1, seq],
  past key/values per layer -> logits of the last position [1, vocab] and the present key/values.
  One graph serves prefill and decode: prefill passes a one-slot past that the mask hides.
- `embed_tokens.npy`: the token embedding table; the host looks tokens up and places the image
  features at the `<image>` positions (what Idefics3's `inputs_merger` does).
The tokenizer/processor files are copied alongside, and `manifest.json` records files, hashes,
signatures and parity: vision max |onnx - torch|, whether greedy ONNX decoding reproduces
`generate` token for token for a fixed prompt (32 tokens, EOS ignored), how many distinct tokens
that was (a sequence of one repeated token proves little), and the per-step logit difference.

Qwen2.5-VL / Qwen3-VL folders are dispatched to `vlm_qwen.py` (same manifest contract). For Jetson
GPUs see docs/vlm.md, "Jetson: TensorRT Edge-LLM" (`export/tensorrt_edgellm_vlm.sh`, in its own
environment).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from vigil360.errors import UserError
from vigil360.export.cli import export_app
from vigil360.export.vlm_quantize import DecoderWeights

SUPPORTED_FAMILIES = ("idefics3",)
VISION_TOLERANCE = {"fp32": 1e-5, "fp16": 5e-2}
# Per-step logits, relative to the largest |logit| of the run: float32 summation order differs between
# torch and onnxruntime's fused kernels (measured 5e-6 on the 2-layer tiny model, 3e-4 on the 30-layer
# 256M-size one); a wrong cache position or mask moves logits by whole units.
LOGIT_TOLERANCE = 1e-3
PARITY_TOKENS = 32
# Fewer distinct greedy tokens than this and "identical sequences" says little about the KV cache path.
MIN_DISTINCT_TOKENS = 8
_PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "processor_config.json",
                    "preprocessor_config.json", "chat_template.json", "chat_template.jinja", "generation_config.json",
                    "config.json", "vocab.json", "merges.txt", "added_tokens.json")


def _wrappers(model):
    """nn.Modules with flat tensor signatures around the vision path and the text decoder."""
    import torch
    from transformers import DynamicCache

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = model.model.vision_model
            self.connector = model.model.connector

        def forward(self, pixel_values):
            # Views are never padded, so every patch is valid (Idefics3 builds the same all-true mask).
            size = pixel_values.shape[-1] // self.vision.config.patch_size
            patch_mask = torch.ones((pixel_values.shape[0], size, size), dtype=torch.bool, device=pixel_values.device)
            hidden = self.vision(pixel_values=pixel_values, patch_attention_mask=patch_mask).last_hidden_state
            return self.connector(hidden)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.text = model.model.text_model
            self.lm_head = model.lm_head
            self.layers = model.config.text_config.num_hidden_layers

        def forward(self, inputs_embeds, attention_mask, position_ids, past):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.layers)],
                                 config=model.config.text_config)
            out = self.text(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=cache, use_cache=True)
            logits = self.lm_head(out.last_hidden_state[:, -1, :])
            presents = []
            for layer in out.past_key_values.layers:
                presents.extend((layer.keys, layer.values))
            return (logits, *presents)

    return Vision().eval(), Decoder().eval()


def _cache_shape(text_config) -> tuple[int, int]:
    heads = text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
    return text_config.num_key_value_heads, head_dim


def export_vision(model, path: Path, image_size: int, dtype) -> tuple[list, list]:
    import torch

    vision, _ = _wrappers(model)
    example = torch.randn(2, 3, image_size, image_size, dtype=dtype)
    images = torch.export.Dim("images", min=1, max=64)
    torch.onnx.export(vision, (example,), str(path), dynamo=True, input_names=["pixel_values"],
                      output_names=["image_features"], dynamic_shapes=({0: images},), external_data=False,
                      optimize=True, verbose=False)
    return (["pixel_values"], ["image_features"])


def export_decoder(model, path: Path, dtype) -> tuple[list[str], list[str]]:
    import torch

    _, decoder = _wrappers(model)
    text = model.config.text_config
    kv_heads, head_dim = _cache_shape(text)
    seq, past_len = 3, 5
    past = tuple(torch.randn(1, kv_heads, past_len, head_dim, dtype=dtype) for _ in range(2 * text.num_hidden_layers))
    args = (torch.randn(1, seq, text.hidden_size, dtype=dtype), torch.ones(1, past_len + seq, dtype=torch.long),
            torch.arange(past_len, past_len + seq).unsqueeze(0), past)
    dyn = torch.export.Dim.DYNAMIC
    shapes = ({1: dyn}, {1: dyn}, {1: dyn}, tuple({2: dyn} for _ in past))
    past_names = [f"past.{i}.{kind}" for i in range(text.num_hidden_layers) for kind in ("key", "value")]
    present_names = [name.replace("past", "present") for name in past_names]
    inputs = ["inputs_embeds", "attention_mask", "position_ids", *past_names]
    outputs = ["logits", *present_names]
    # The weights go to one external-data file: the 256M decoder is over protobuf's 2 GB limit in fp32
    # only with room to spare, and larger families are well over it.
    torch.onnx.export(decoder, args, str(path), dynamo=True, input_names=inputs, output_names=outputs,
                      dynamic_shapes=shapes, external_data=True, optimize=True, verbose=False)
    return inputs, outputs


def _signature(session) -> tuple[list, list]:
    from vigil360.models.manifest import TensorSpec

    def spec(node):
        return TensorSpec(name=node.name, shape=[d if isinstance(d, int) else str(d) for d in node.shape],
                          dtype=node.type.replace("tensor(", "").rstrip(")"))

    return [spec(n) for n in session.get_inputs()], [spec(n) for n in session.get_outputs()]


def parity_prompt_images(image_size: int, count: int = 2, seed: int = 7):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for _ in range(count)]


@dataclass(frozen=True)
class DecodeParity:
    """Greedy ONNX Runtime decoding against transformers `generate`, step by step (EOS ignored)."""

    expected: list[int]
    got: list[int]
    max_logit_diff: float  # max |onnx - torch| over the steps both sides decoded from the same prefix
    logit_scale: float  # max |torch logit| over those steps

    @property
    def tokens_match(self) -> bool:
        return self.got == self.expected

    @property
    def distinct_tokens(self) -> int:
        return len(set(self.expected))

    @property
    def agreeing_prefix(self) -> int:
        pairs = zip(self.got, self.expected, strict=False)
        return next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(self.got), len(self.expected)))

    def logits_within(self, tolerance: float) -> bool:
        return self.max_logit_diff <= tolerance * max(1.0, self.logit_scale)

    def metadata(self) -> dict[str, str]:
        return {"greedy_tokens_match_generate": str(self.tokens_match).lower(),
                "parity_tokens": str(len(self.expected)),
                "distinct_parity_tokens": str(self.distinct_tokens),
                "tokens_agreeing_before_first_difference": f"{self.agreeing_prefix}/{len(self.expected)}",
                "step_logits_max_abs_diff": f"{self.max_logit_diff:.3g}",
                "step_logits_max_abs_value": f"{self.logit_scale:.3g}"}


def decode_parity(torch_reference: tuple[list[int], object], runtime, request) -> DecodeParity:
    """`runtime` decodes as many greedy tokens as `torch_reference` (ids, logits [steps, vocab]) holds;
    logits are compared up to the first token difference (after it the prefixes differ and so,
    legitimately, do the logits)."""
    import numpy as np

    expected, torch_logits = torch_reference
    tokens = len(expected)
    got, onnx_logits = [], []
    for token, logits in runtime.decode_logits(runtime.prepare(request), tokens, ignore_eos=True):
        got.append(token)
        onnx_logits.append(np.asarray(logits, np.float32))
    result = DecodeParity(expected, got, 0.0, 0.0)
    same = min(result.agreeing_prefix + 1, len(got), len(expected))
    diff = np.abs(np.stack(onnx_logits[:same]) - torch_logits[:same])
    return DecodeParity(expected, got, float(diff.max()), float(np.abs(torch_logits[:same]).max()))


def export_vlm(model_dir: str | Path, out: str | Path, fp16: bool = False, parity_tokens: int = PARITY_TOKENS,
               threads: int | None = None, decoder_weights: DecoderWeights = "fp32") -> Path:
    """Export, check parity, write the manifest; returns the manifest path. Fails on a parity miss.

    `decoder_weights` int8 or int4 then replaces the checked decoder by one with quantised weights
    (CPU; see `vlm_quantize.py`): token decoding is memory-bound on a CPU, and int8 / int4 weights
    read 4x / 7x fewer bytes per token. Their agreement with `generate` is recorded, not required -
    quantisation changes the numbers.
    """
    if fp16 and decoder_weights != "fp32":
        raise UserError(f"choose one of --fp16 (GPU) and --{decoder_weights} (CPU decoder weights)")
    from vigil360.models.vlm.qwen.random_init import QWEN_FAMILIES, model_family

    if model_family(model_dir) in QWEN_FAMILIES:
        if fp16:
            raise UserError("--fp16 is not offered for Qwen-VL exports yet (fp32, --int8 or --int4)")
        from vigil360.export.vlm_qwen import export_qwen_vlm

        return export_qwen_vlm(model_dir, out, parity_tokens=parity_tokens, threads=threads,
                               decoder_weights=decoder_weights)
    import numpy as np
    import torch

    from vigil360.models.manifest import Manifest, describe_file, package_versions, write_manifest
    from vigil360.models.runtime import create_session
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    from vigil360.models.vlm.backends.transformers_backend import TransformersBackend
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.random_init import weights_provenance

    reference = TransformersBackend(model_dir, threads=threads)
    model, folder = reference.model, reference.model_dir
    family = model.config.model_type
    if family not in SUPPORTED_FAMILIES:
        raise UserError(f"{folder}: export supports {', '.join(SUPPORTED_FAMILIES)} (SmolVLM v1 / Idefics3), "
                        f"not {family!r}; use the transformers or HTTP backend for it")
    precision = "fp16" if fp16 else "fp32"
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        model = model.to(dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image_size = model.config.vision_config.image_size
    with torch.inference_mode(False), torch.no_grad():
        export_vision(model, out / "vision.onnx", image_size, dtype)
        export_decoder(model, out / "decoder.onnx", dtype)
    embed = model.get_input_embeddings().weight.detach().to(torch.float32 if not fp16 else dtype).numpy()
    np.save(out / "embed_tokens.npy", embed)
    for name in _PROCESSOR_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)

    # Parity 1: the vision graph against torch on fixed random images.
    images = parity_prompt_images(image_size)
    request = VlmRequest(images=images, system="", user="Describe the outlined person.", max_new_tokens=parity_tokens)
    inputs = reference.prepare(request)
    pixels = inputs["pixel_values"][0].to(dtype)
    vision_wrapper, _ = _wrappers(model)
    with torch.no_grad():
        torch_features = vision_wrapper(pixels).float().numpy()
    session = create_session(out / "vision.onnx", "cpu", threads=threads)
    onnx_features = session.run(None, {"pixel_values": pixels.numpy()})[0].astype(np.float32)
    vision_diff = float(np.abs(onnx_features - torch_features).max())
    vision_scale = float(np.abs(torch_features).max())
    vision_in, vision_out = _signature(session)

    # Parity 2: greedy ONNX Runtime decoding against `generate`, token for token.
    kv_heads, head_dim = _cache_shape(model.config.text_config)
    config = {"family": family, "image_size": image_size, "image_token_id": model.config.image_token_id,
              "eos_token_ids": sorted(reference.eos_ids()), "num_layers": model.config.text_config.num_hidden_layers,
              "kv_heads": kv_heads, "head_dim": head_dim, "hidden_size": model.config.text_config.hidden_size,
              "vocab_size": model.config.text_config.vocab_size, "image_seq_len": reference.processor.image_seq_len}
    decoder_in, decoder_out = _signature(create_session(out / "decoder.onnx", "cpu", threads=1))
    files = [describe_file(out, "vision.onnx", "vision", inputs=vision_in, outputs=vision_out,
                           parity_max_abs={"image_features": vision_diff},
                           metadata={"image_features_max_abs_value": f"{vision_scale:.6g}"}),
             describe_file(out, "decoder.onnx", "decoder", inputs=decoder_in, outputs=decoder_out)]
    if (out / "decoder.onnx.data").is_file():
        files.append(describe_file(out, "decoder.onnx.data", "decoder_weights", format="data"))
    files.append(describe_file(out, "embed_tokens.npy", "embed_tokens", format="data"))
    for name in _PROCESSOR_FILES:
        if (out / name).is_file():
            files.append(describe_file(out, name, "processor", format="data"))
    manifest = Manifest(kind="vlm", model=folder.name, family=family, weights=weights_provenance(folder),
                        config=config, image_size=image_size, opset=_opset(out / "decoder.onnx"),
                        precision=precision, files=files,
                        versions=package_versions(),
                        notes={"parity_prompt": "2 random 'views' (seed 7) + a fixed caption request",
                               "decoding": "greedy; prefill uses a masked one-slot past"})
    write_manifest(out, manifest)

    expected_inputs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    runtime = OnnxBackend(out, providers="cpu", threads=threads, verify=False)
    torch_reference = reference.generate_logits(expected_inputs, parity_tokens, ignore_eos=True)
    decoded = decode_parity(torch_reference, runtime, request)
    manifest.file("decoder").metadata.update(decoded.metadata())
    if decoded.distinct_tokens < min(MIN_DISTINCT_TOKENS, parity_tokens):
        manifest.notes["parity_strength"] = (f"weak: greedy decoding gave {decoded.distinct_tokens} distinct tokens "
                                             f"in {parity_tokens}; per-step logits carry the check")
    # The tolerance is absolute for features of unit scale and relative beyond: a 12-layer SigLIP
    # with features up to ~10 differs from torch by ~1e-5 even with every onnxruntime optimisation
    # off - float32 summation order, not an export error.
    tolerance = VISION_TOLERANCE[precision] * max(1.0, vision_scale)
    problems = []
    if vision_diff > tolerance:
        problems.append(f"vision max abs diff {vision_diff:.2e} > {tolerance:.2e} "
                        f"({VISION_TOLERANCE[precision]:g} x max(1, max |feature| = {vision_scale:.3g}))")
    if not fp16 and not decoded.tokens_match:
        problems.append(f"greedy tokens differ from generate: onnx {decoded.got} vs torch {decoded.expected}")
    if not fp16 and not decoded.logits_within(LOGIT_TOLERANCE):
        problems.append(f"per-step logits differ by {decoded.max_logit_diff:.2e} > {LOGIT_TOLERANCE:g} x max(1, "
                        f"max |logit| = {decoded.logit_scale:.3g})")
    # Recorded either way, so a runtime can refuse a folder whose check failed.
    manifest.notes["parity"] = f"failed: {'; '.join(problems)}" if problems else "passed"
    path = write_manifest(out, manifest)
    if problems:
        raise UserError(f"{out}: parity check failed ({'; '.join(problems)}); manifest written for inspection")
    if decoder_weights != "fp32":
        path = quantize_decoder(out, manifest, threads,
                                lambda runtime: decode_parity(torch_reference, runtime, request).metadata(),
                                decoder_weights)
    return path


def token_agreement(expected: list[int], got: list[int]) -> dict[str, str]:
    """How far a runtime's greedy tokens follow `generate`'s (manifest metadata)."""
    agreeing = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), len(expected))
    return {"greedy_tokens_match_generate": str(got == expected).lower(),
            "tokens_agreeing_before_first_difference": f"{agreeing}/{len(expected)}"}


def quantize_decoder(out: Path, manifest, threads: int | None, agreement: Callable[[Any], dict[str, str]],
                     weights: DecoderWeights, runtime_class=None) -> Path:
    """Swap the checked fp32 decoder for a weight-quantised one and record how far its tokens agree."""
    from vigil360.export.vlm_quantize import DESCRIPTIONS, quantize_decoder_file
    from vigil360.models.manifest import describe_file, write_manifest
    from vigil360.models.runtime import create_session
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend

    fp32 = manifest.file("decoder")
    big = fp32.size_bytes + sum(g.size_bytes for g in manifest.files if g.role == "decoder_weights") > 6 << 30
    stem = f"decoder_{weights}"
    quantize_decoder_file(out / "decoder.onnx", out / f"{stem}.onnx", weights, big)
    for name in ("decoder.onnx", "decoder.onnx.data"):
        (out / name).unlink(missing_ok=True)
    files = sorted(p.name for p in out.iterdir() if p.name.startswith(stem))
    inputs, outputs = _signature(create_session(out / f"{stem}.onnx", "cpu", threads=1))
    kept = [g for g in manifest.files if g.role not in ("decoder", "decoder_weights")]
    fp32_match = fp32.metadata["greedy_tokens_match_generate"]
    decoder = describe_file(out, f"{stem}.onnx", "decoder", inputs=inputs, outputs=outputs,
                            metadata={"quantization": DESCRIPTIONS[weights],
                                      "fp32_greedy_tokens_match_generate": fp32_match})
    extra = [describe_file(out, name, "decoder_weights", format="data") for name in files if name != f"{stem}.onnx"]
    manifest.files = [kept[0], decoder, *extra, *kept[1:]]
    manifest.precision = weights
    manifest.notes["parity"] = "passed (fp32 graphs, before the decoder was quantised)"
    write_manifest(out, manifest)
    runtime = (runtime_class or OnnxBackend)(out, providers="cpu", threads=threads, verify=False)
    decoder.metadata.update(agreement(runtime))
    return write_manifest(out, manifest)


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


@export_app.command("vlm")
def export_vlm_command(
    model_dir: Path = typer.Option(..., "--model-dir", help="Idefics3/SmolVLM or Qwen2.5/3-VL folder"),
    out: Path = typer.Option(..., "--out", help="folder for the ONNX graphs and manifest.json"),
    fp16: bool = typer.Option(False, "--fp16", help="export in float16 (GPU execution providers)"),
    int8: bool = typer.Option(False, "--int8", help="then quantise the decoder's weights to int8 (CPU decoding)"),
    int4: bool = typer.Option(False, "--int4", help="then quantise the decoder's weights to 4 bits in blocks of 32 "
                              "(CPU decoding; the scheme onnxruntime-genai uses)"),
    parity_tokens: int = typer.Option(PARITY_TOKENS, help="greedy tokens compared with transformers (EOS ignored)"),
    threads: int | None = typer.Option(None, help="CPU threads for torch and onnxruntime"),
) -> None:
    """Export a compact VLM (vision encoder + connector, decoder with KV cache) and check parity."""
    from vigil360.models.manifest import load_manifest

    if int8 and int4:
        raise UserError("choose one of --int8 and --int4")
    weights = "int8" if int8 else "int4" if int4 else "fp32"
    path = export_vlm(model_dir, out, fp16=fp16, parity_tokens=parity_tokens, threads=threads, decoder_weights=weights)
    manifest = load_manifest(path.parent, kind="vlm", verify=False)
    vision = manifest.file("vision")
    decoder = manifest.file("decoder")
    typer.echo(f"wrote {path} ({manifest.precision}, weights: {manifest.weights})")
    typer.echo(f"  vision parity max abs diff {vision.parity_max_abs['image_features']:.2e}; greedy tokens "
               f"match generate: {decoder.metadata['greedy_tokens_match_generate']}")
