"""`vigil360 bench latency vlm`: time to first token, tokens/s and vision-encoder ms, transformers vs ONNX Runtime.

Run it at a realistic size: by default it builds a RANDOM-WEIGHTS model of the published
SmolVLM-256M architecture (compute does not depend on weight values) and exports it. Both
backends decode greedily the same fixed number of tokens (EOS ignored), on the same prompt and
images, with the same thread count. Backends are interleaved round by round; the report gives the
median and min–max of each figure and of the per-round speed-up against transformers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import typer

from vigil360.bench.latency import latency_app, machine_name, peak_rss_mb


def _ensure_model(model_dir: Path | None, architecture: str, work_dir: Path) -> Path:
    from vigil360.models.vlm.random_init import write_random_vlm

    if model_dir is not None:
        return model_dir
    folder = work_dir / f"{architecture}-random"
    if not (folder / "config.json").is_file():
        typer.echo(f"building a random-weights {architecture} in {folder}")
        write_random_vlm(folder, architecture)
    return folder


def _ensure_export(onnx_dir: Path | None, model_dir: Path, work_dir: Path, threads: int,
                   decoder_weights: str = "fp32") -> Path:
    from vigil360.export.vlm import export_vlm

    if onnx_dir is not None:
        return onnx_dir
    folder = work_dir / f"{model_dir.name}-onnx{'' if decoder_weights == 'fp32' else '-' + decoder_weights}"
    if not (folder / "manifest.json").is_file():
        typer.echo(f"exporting {model_dir} to {folder} (with parity check)")
        export_vlm(model_dir, folder, threads=threads, decoder_weights=decoder_weights)
    return folder


def quantized_schemes(values: list[str]) -> list[str]:
    schemes = [] if values == ["none"] else values
    unknown = sorted(set(schemes) - {"int8", "int4"})
    if unknown:
        raise typer.BadParameter(f"unknown decoder weights {unknown} (int8, int4 or none)", param_hint="--quantized")
    return schemes


def bench_request(images: int, size: int, tokens: int):
    """The timed request: `images` fixed random square views of `size` px and a caption prompt."""
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.prompts import caption_request

    rng = np.random.default_rng(0)
    shots = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(images)]
    base = caption_request("A person snatches a phone from a pedestrian and runs towards the crossing.")
    return VlmRequest(images=shots, system=base.system, user=base.user, max_new_tokens=tokens)


def measure(model_dir: Path, onnx_dirs: dict[str, Path], images: int, tokens: int, threads: int, warmup: int,
            repeats: int) -> dict:
    """Figures for transformers and for each named ONNX export folder (e.g. fp32 and int8)."""
    import torch

    from vigil360.models.vlm.backends.common import DecodeClock
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    from vigil360.models.vlm.backends.transformers_backend import ClockStreamer, TransformersBackend

    torch.set_num_threads(threads)
    reference = TransformersBackend(model_dir, threads=threads)
    runtimes = {name: OnnxBackend(folder, providers="cpu", threads=threads) for name, folder in onnx_dirs.items()}
    size = reference.model.config.vision_config.image_size
    request = bench_request(images, size, tokens)
    torch_inputs = reference.prepare(request)

    def torch_vision():
        with torch.inference_mode():
            reference.model.model.get_image_features(pixel_values=torch_inputs["pixel_values"])

    def torch_run(clock):
        reference.generate_ids(reference.prepare(request), tokens, streamer=ClockStreamer(clock), ignore_eos=True)

    def onnx_pair(runtime):
        pixels = runtime.prepare(request)["pixel_values"]

        def run(clock):
            for _ in runtime.decode_steps(runtime.prepare(request), tokens, clock, ignore_eos=True):
                pass

        return (lambda: runtime.encode_images(pixels)), run

    backends = {"transformers": (torch_vision, torch_run)}
    backends.update({name: onnx_pair(runtime) for name, runtime in runtimes.items()})
    # Every figure is interleaved: each round times every backend once (vision, then a full decode),
    # so a burst of load from other processes hits all backends alike; ratios are taken per round.
    # TTFT and ms/token come from per-token timestamps within each run, so run-to-run noise cannot
    # make one of them negative.
    runs: dict[str, dict[str, list[float]]] = {
        name: {"vision_ms": [], "ttft_ms": [], "per_token_ms": []} for name in backends
    }
    for round_index in range(warmup + repeats):
        for name, (vision, run) in backends.items():
            started = time.perf_counter()
            vision()
            vision_ms = (time.perf_counter() - started) * 1000.0
            clock = DecodeClock()
            run(clock)
            if clock.tokens != tokens:
                raise RuntimeError(f"{name}: decoded {clock.tokens} tokens, expected {tokens}")
            if round_index >= warmup:
                runs[name]["vision_ms"].append(vision_ms)
                runs[name]["ttft_ms"].append((clock.first_token - clock.start) * 1000.0)
                runs[name]["per_token_ms"].append(clock.per_token_s() * 1000.0)
    results = {name: summarise(runs[name], runs["transformers"]) for name in backends}
    for name in runtimes:
        results[name].update({"precision": runtimes[name].manifest.precision, "export": str(onnx_dirs[name])})
    first = next(iter(runtimes.values())).manifest
    return {
        "benchmark": "vlm latency", "machine": machine_name(), "load_average": load_average(), "threads": threads,
        "weights": first.weights, "architecture": first.model, "images": images, "image_size": size,
        "prompt_tokens": int(torch_inputs["input_ids"].shape[1]), "new_tokens": tokens, "warmup": warmup,
        "repeats": repeats, "interleaved": True, "results": results, "peak_rss_mb": peak_rss_mb(),
        "versions": first.versions,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values))}


def summarise(runs: dict[str, list[float]], reference: dict[str, list[float]]) -> dict:
    """Median and min-max of each figure, and per-round speed-ups against the reference backend
    (round i of both were measured back to back)."""
    figures: dict = {key: spread(values) for key, values in runs.items()}
    for key in ("vision_ms", "per_token_ms"):
        ratios = [ref / own for ref, own in zip(reference[key], runs[key], strict=True)]
        figures[f"{key.removesuffix('_ms')}_speedup"] = spread(ratios)
    figures["runs"] = runs
    return figures


def load_average() -> list[float] | None:
    """1/5/15-minute load average when the figures were taken (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cell(figure: dict, digits: int = 1, suffix: str = "") -> str:
    return (f"{figure['median']:.{digits}f}{suffix} ({figure['min']:.{digits}f}–{figure['max']:.{digits}f})")


def markdown(report: dict) -> str:
    load = report.get("load_average")
    rows = [f"VLM latency - {report['architecture']} ({report['weights']}; RANDOM WEIGHTS: latency is real, output "
            f"is not), {report['images']} image(s) of {report['image_size']} px, {report['prompt_tokens']} prompt "
            f"tokens, {report['new_tokens']} new tokens, {report['threads']} threads, {report['machine']}, "
            f"load average {load if load is not None else 'n/a'}; backends interleaved, {report['repeats']} rounds "
            f"after {report['warmup']} warm-up: median (min–max)",
            "", "| backend | vision encoder ms | time to first token ms | ms / token | tokens/s "
            "| vision speed-up | per-token speed-up |",
            "|---|---|---|---|---|---|---|"]
    for name, figures in report["results"].items():
        tokens_per_s = 1000.0 / figures["per_token_ms"]["median"]
        rows.append(f"| {name} | {_cell(figures['vision_ms'])} | {_cell(figures['ttft_ms'])} "
                    f"| {_cell(figures['per_token_ms'])} | {tokens_per_s:.1f} "
                    f"| {_cell(figures['vision_speedup'], 2, '×')} | {_cell(figures['per_token_speedup'], 2, '×')} |")
    return "\n".join(rows)


@latency_app.command("vlm")
def latency_vlm(
    model_dir: Path | None = typer.Option(None, help="transformers model folder (default: build a random-weights one)"),
    onnx_dir: Path | None = typer.Option(None, help="`vigil360 export vlm` folder (default: export model_dir)"),
    quantized: list[str] = typer.Option(["int8", "int4"], "--quantized",
                                        help="also time exports with these decoder weights (repeat the option; "
                                             "int8, int4, or none for fp32 only)"),
    architecture: str = typer.Option("smolvlm-256m", help="random-weights architecture when no --model-dir"),
    work_dir: Path = typer.Option(Path.home() / ".cache" / "vigil360" / "bench-vlm",
                                  help="where built/exported models are kept (outside the repository: ~1.5 GB)"),
    images: int = typer.Option(1, min=1, help="images in the prompt"),
    tokens: int = typer.Option(32, min=2, help="new tokens per run (EOS ignored)"),
    threads: int = typer.Option(2, min=1, help="CPU threads for both backends"),
    warmup: int = typer.Option(1, min=0),
    repeats: int = typer.Option(3, min=1),
    out: Path | None = typer.Option(None, help="write the JSON report here (atomically)"),
    family: str = typer.Option("idefics3", help="idefics3 | qwen2_5_vl | qwen3_vl (Qwen: default architecture "
                               "FAMILY-0.6b)"),
    image_size: int = typer.Option(448, min=28, help="Qwen families: side of the square test images, px"),
) -> None:
    """Time-to-first-token, tokens/s and vision ms: transformers generate vs ONNX Runtime greedy decoding."""
    from vigil360.records import atomic_write_text

    if family != "idefics3":
        from vigil360.bench.latency_vlm_qwen import ensure_qwen, markdown_qwen, measure_qwen

        if family not in ("qwen2_5_vl", "qwen3_vl"):
            raise typer.BadParameter(f"unknown family {family!r}", param_hint="--family")
        arch = f"{family}-0.6b" if architecture == "smolvlm-256m" else architecture
        model, exports = ensure_qwen(model_dir, arch, work_dir, threads, quantized_schemes(quantized))
        if onnx_dir is not None:
            exports["onnxruntime"] = onnx_dir
        report = measure_qwen(model, exports, images, image_size, tokens, threads, warmup, repeats)
        if out is not None:
            atomic_write_text(out, json.dumps(report, indent=2) + "\n")
        typer.echo(markdown_qwen(report))
        return
    model = _ensure_model(model_dir, architecture, work_dir)
    exports = {"onnxruntime": _ensure_export(onnx_dir, model, work_dir, threads)}
    for scheme in quantized_schemes(quantized):
        exports[f"onnxruntime {scheme} decoder"] = _ensure_export(None, model, work_dir, threads, scheme)
    report = measure(model, exports, images, tokens, threads, warmup, repeats)
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    typer.echo(markdown(report))
