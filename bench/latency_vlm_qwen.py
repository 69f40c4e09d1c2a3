"""`vigil360 bench latency vlm --family qwen2_5_vl|qwen3_vl`: Qwen-VL decoding, transformers vs ONNX Runtime.

By default it builds a RANDOM-WEIGHTS "-0.6b" model (the published Qwen2.5-0.5B / Qwen3-0.6B text
decoders with their 151,936-token vocabulary, and a published-width vision tower cut to 8 blocks;
compute does not depend on weight values) and exports it fp32 and with int8 / int4 decoders. Every
backend greedily decodes the same fixed number of tokens (EOS ignored) on the same images and
prompt with the same thread count. Runs are interleaved (one run of each backend per round) so a
burst of load from other processes hits all alike; ms/token and time to first token come from
per-token timestamps inside each run. Figures: medians with min-max over the rounds.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vigil360.bench.latency import machine_name, peak_rss_mb, time_it
from vigil360.bench.latency_vlm import bench_request


def ensure_qwen(model_dir: Path | None, architecture: str, work_dir: Path, threads: int,
                quantized: list[str]) -> tuple[Path, dict[str, Path]]:
    from vigil360.export.vlm import export_vlm
    from vigil360.export.vlm_qwen import quantized_from_export
    from vigil360.models.vlm.qwen.random_init import write_random_qwen

    if model_dir is None:
        model_dir = work_dir / f"{architecture}-random"
        if not (model_dir / "config.json").is_file():
            typer.echo(f"building a random-weights {architecture} in {model_dir}")
            write_random_qwen(model_dir, architecture)
    exports = {"onnxruntime": work_dir / f"{model_dir.name}-onnx"}
    if not (exports["onnxruntime"] / "manifest.json").is_file():
        typer.echo(f"exporting {model_dir} to {exports['onnxruntime']} (with parity check)")
        export_vlm(model_dir, exports["onnxruntime"], threads=threads)
    for scheme in quantized:
        folder = exports[f"onnxruntime {scheme} decoder"] = work_dir / f"{model_dir.name}-onnx-{scheme}"
        if not (folder / "manifest.json").is_file():
            typer.echo(f"quantising the decoder of {exports['onnxruntime']} to {folder} ({scheme})")
            quantized_from_export(model_dir, exports["onnxruntime"], folder, scheme, threads=threads)
    return model_dir, exports


def _spread(values: list[float]) -> dict[str, float]:
    import numpy as np

    return {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values))}


def measure_qwen(model_dir: Path, onnx_dirs: dict[str, Path], images: int, image_size: int, tokens: int,
                 threads: int, warmup: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from vigil360.models.vlm.backends.common import DecodeClock
    from vigil360.models.vlm.backends.transformers_backend import ClockStreamer
    from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend
    from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend

    torch.set_num_threads(threads)
    reference = QwenTransformersBackend(model_dir, threads=threads)
    runtimes = {name: QwenOnnxBackend(folder, providers="cpu", threads=threads) for name, folder in onnx_dirs.items()}
    request = bench_request(images, image_size, tokens)
    torch_inputs = reference.prepare(request)

    def torch_vision():
        with torch.inference_mode():
            reference.model.model.get_image_features(pixel_values=torch_inputs["pixel_values"],
                                                     image_grid_thw=torch_inputs["image_grid_thw"])

    def torch_run(clock):
        reference.generate_ids(reference.prepare(request), tokens, streamer=ClockStreamer(clock), ignore_eos=True)

    def onnx_pair(runtime):
        prepared = runtime.prepare(request)

        def run(clock):
            for _ in runtime.decode_steps(runtime.prepare(request), tokens, clock, ignore_eos=True):
                pass

        return (lambda: runtime.encode_images(prepared)), run

    backends = {"transformers": (torch_vision, torch_run)}
    backends.update({name: onnx_pair(runtime) for name, runtime in runtimes.items()})
    vision = {name: time_it(fn, warmup=warmup, repeats=repeats).as_dict()["median_ms"]
              for name, (fn, _) in backends.items()}
    runs: dict[str, dict[str, list[float]]] = {name: {"ttft_ms": [], "per_token_ms": []} for name in backends}
    for round_index in range(warmup + repeats):
        for name, (_, run) in backends.items():
            clock = DecodeClock()
            run(clock)
            if clock.tokens != tokens:
                raise RuntimeError(f"{name}: decoded {clock.tokens} tokens, expected {tokens}")
            if round_index >= warmup:
                runs[name]["ttft_ms"].append((clock.first_token - clock.start) * 1000.0)
                runs[name]["per_token_ms"].append(clock.per_token_s() * 1000.0)
    baseline = float(np.median(runs["transformers"]["per_token_ms"]))
    results = {}
    for name, series in runs.items():
        per_token = _spread(series["per_token_ms"])
        results[name] = {"vision_ms": vision[name], "ttft_ms": _spread(series["ttft_ms"]), "per_token_ms": per_token,
                         "tokens_per_s": 1000.0 / per_token["median"], "runs": series,
                         "per_token_speedup_vs_transformers": baseline / per_token["median"]}
        if name in runtimes:
            results[name].update(precision=runtimes[name].manifest.precision, export=str(onnx_dirs[name]))
    first = next(iter(runtimes.values())).manifest
    return {"benchmark": "vlm latency", "family": first.family, "machine": machine_name(), "threads": threads,
            "weights": first.weights, "architecture": first.model, "images": images, "image_size": image_size,
            "image_grid_thw": torch_inputs["image_grid_thw"].tolist(),
            "parameters": sum(p.numel() for p in reference.model.parameters()),
            "prompt_tokens": int(torch_inputs["input_ids"].shape[1]), "new_tokens": tokens, "warmup": warmup,
            "repeats": repeats, "results": results, "peak_rss_mb": peak_rss_mb(), "versions": first.versions}


def markdown_qwen(report: dict) -> str:
    rows = [f"VLM latency - {report['architecture']} ({report['weights']}; {report['parameters'] / 1e9:.2f} B "
            f"parameters; RANDOM WEIGHTS: latency is real, output is not), {report['images']} image(s) of "
            f"{report['image_size']} px (grid {report['image_grid_thw']}), {report['prompt_tokens']} prompt tokens, "
            f"{report['new_tokens']} new tokens, {report['threads']} threads, {report['repeats']} interleaved rounds, "
            f"{report['machine']}", "",
            "| backend | vision ms | first token ms, median (min-max) | ms / token, median (min-max) | tokens/s "
            "| per-token speed-up |", "|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        ttft, per_token = r["ttft_ms"], r["per_token_ms"]
        rows.append(f"| {name} | {r['vision_ms']:.1f} | {ttft['median']:.0f} ({ttft['min']:.0f}-{ttft['max']:.0f}) | "
                    f"{per_token['median']:.1f} ({per_token['min']:.1f}-{per_token['max']:.1f}) | "
                    f"{r['tokens_per_s']:.1f} | {r['per_token_speedup_vs_transformers']:.2f}x |")
    return "\n".join(rows)
