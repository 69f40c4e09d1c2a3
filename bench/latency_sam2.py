"""`vigil360 bench latency sam2`: per-stage and full-step latency, torch eager vs onnxruntime, and a
long-stream memory check.

Stages are timed on the same inputs for every backend: torch eager runs the export wrappers
(sam2's own modules; only RoPE is in its real form), onnxruntime runs the exported graphs, and
`ort-int8` runs them after onnxruntime's dynamic int8 quantisation (weights int8, activations
quantised on the fly), whose output error against fp32 is reported next to its timings. A "step"
is one tracking step with a full bank: encoder, memory attention over `--memories` memories and
`--pointers` pointers, decoder, memory encoder, for N objects. `--stream-frames` runs the real
Sam2Tracker over a synthetic stream and samples RSS, to show memory stays flat.
"""

from __future__ import annotations

import functools
import json
import platform
from pathlib import Path

import numpy as np
import typer

from vigil360.bench.latency import current_rss_mb, latency_app, machine_name, peak_rss_mb, time_it
from vigil360.errors import UserError

STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated integers, got {text!r}") from None


def _lean(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    values = _ints(text)
    if len(values) != 2 or min(values) < 1:
        raise UserError(f"--lean needs MEMORIES,POINTERS (two positive integers), got {text!r}")
    return values[0], values[1]


def quantize_folder(folder: Path, out: Path) -> Path:
    """Dynamic int8 copies of the four graphs (plus the manifest's other files) in `out`."""
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from vigil360.models.manifest import describe_file, load_manifest, write_manifest

    manifest = load_manifest(folder, kind="sam2", verify=False)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for graph in manifest.files:
        if graph.format == "onnx":
            if not (out / graph.path).is_file():
                quantize_dynamic(
                    str(folder / graph.path),
                    str(out / graph.path),
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm"],
                )
        elif graph.format == "data":
            shutil.copy(folder / graph.path, out / graph.path)
        else:
            continue
        files.append(
            describe_file(
                out,
                graph.path,
                graph.role,
                format=graph.format,
                inputs=graph.inputs,
                outputs=graph.outputs,
                metadata={"quantization": "dynamic int8 (onnxruntime), MatMul/Gemm weights"},
            )
        )
    write_manifest(out, manifest.model_copy(update={"files": files, "precision": "int8-dynamic"}))
    return out


def _feeds(sam, objects: int, memories: int, pointers: int) -> dict[str, tuple]:
    from vigil360.export.sam2 import example_inputs

    inputs = example_inputs(sam, objects=objects, memories=memories, pointers=pointers, points=1)
    # Tracking frames: one padding point per object, no mask prompt.
    embed, feat0, feat1, _, _, mask_input, _ = inputs["mask_decoder"]
    import torch

    inputs["mask_decoder"] = (
        embed,
        feat0,
        feat1,
        torch.zeros(objects, 1, 2),
        -torch.ones(objects, 1, dtype=torch.int32),
        mask_input,
        torch.zeros(objects),
    )
    return inputs


def _max_difference(session, reference, feeds: dict) -> float:
    got, expected = session.run(None, feeds), reference.run(None, feeds)
    return float(max(np.abs(a - b).max() for a, b in zip(got, expected, strict=True)))


def _stage_timings(backend: str, run_stage, inputs: dict, warmup: int, repeats: int) -> dict:
    results = {}
    for stage in STAGES:
        results[stage] = time_it(lambda s=stage: run_stage(s, inputs[s]), warmup, repeats).as_dict()

    def step() -> None:
        for stage in STAGES:
            run_stage(stage, inputs[stage])

    results["step"] = time_it(step, warmup, repeats).as_dict()
    return results


def run_latency(
    model: str,
    sizes: list[int],
    objects_list: list[int],
    memories: int,
    pointers: int,
    warmup: int,
    repeats: int,
    threads: int,
    providers: str,
    export_root: Path,
    quantize: bool,
    backends: tuple[str, ...] = ("torch", "ort"),
    lean: tuple[int, int] | None = None,
    torch_device: str = "cpu",
) -> dict:
    """`torch_device="cuda"` runs the torch baseline on the GPU (synchronised per stage), in fp32 and,
    where the card supports it, under bf16 autocast ("torch-bf16")."""
    import torch

    from vigil360.export.sam2 import build_model, ensure_export, wrapper_for
    from vigil360.models.runtime import create_session

    torch.set_num_threads(threads)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": machine_name(),
            "threads": threads,
            "providers": providers,
        },
        "model": model,
        "weights": "random-init, seed 0",
        "memories": memories,
        "pointers": pointers,
        "warmup": warmup,
        "repeats": repeats,
        "runs": [],
    }
    for size in sizes:
        folder = export_root / f"{model}_{size}"
        ensure_export(folder, model=model, image_size=size, seed=0)
        sam = build_model(model, size, seed=0)
        modules = {stage: wrapper_for(sam, stage).to(torch_device) for stage in STAGES}
        graph_sets = {"ort": folder}
        if quantize:
            graph_sets["ort-int8"] = quantize_folder(folder, folder / "int8")
        sessions = {
            name: {
                stage: create_session(path / f"{stage}.onnx", providers=providers, threads=threads)
                for stage in STAGES
            }
            for name, path in graph_sets.items()
        }
        for objects in objects_list:
            inputs = _feeds(sam, objects, memories, pointers)
            numpy_inputs = {
                stage: {n: t.numpy() for n, t in zip(modules[stage].input_names, args, strict=True)}
                for stage, args in inputs.items()
            }
            row = {"image_size": size, "objects": objects, "backends": {}}

            def torch_stage(stage, args, modules=modules, bf16=False):
                with torch.inference_mode(), torch.autocast(torch_device, torch.bfloat16, enabled=bf16):
                    result = modules[stage](*args)
                if torch_device == "cuda":
                    torch.cuda.synchronize()
                return result

            if "torch" in backends:
                if torch_device != "cpu":
                    inputs = {stage: tuple(t.to(torch_device) for t in args) for stage, args in inputs.items()}
                row["backends"]["torch"] = _stage_timings("torch", torch_stage, inputs, warmup, repeats)
                if torch_device == "cuda" and torch.cuda.is_bf16_supported():
                    row["backends"]["torch-bf16"] = _stage_timings(
                        "torch-bf16", functools.partial(torch_stage, bf16=True), inputs, warmup, repeats)
            lean_inputs = None
            if lean is not None:
                lean_args = _feeds(sam, objects, *lean)
                lean_inputs = {
                    stage: {n: t.numpy() for n, t in zip(modules[stage].input_names, args, strict=True)}
                    for stage, args in lean_args.items()
                }
            for name, stage_sessions in sessions.items():
                variants = [(name, numpy_inputs)] + ([(f"{name}-lean", lean_inputs)] if lean_inputs else [])
                for label, feeds_set in variants:

                    def ort_stage(stage, _args, stage_sessions=stage_sessions, feeds=feeds_set):
                        return stage_sessions[stage].run(None, feeds[stage])

                    row["backends"][label] = _stage_timings(label, ort_stage, inputs, warmup, repeats)
                if name != "ort":
                    fp32 = sessions["ort"]
                    row["backends"][name]["parity_max_abs_vs_fp32"] = {
                        stage: _max_difference(stage_sessions[stage], fp32[stage], numpy_inputs[stage])
                        for stage in STAGES
                    }
            if "torch" in row["backends"]:
                eager = row["backends"]["torch"]["step"]["median_ms"]
                row["speedup_vs_torch"] = {
                    name: eager / timings["step"]["median_ms"]
                    for name, timings in row["backends"].items()
                    if name != "torch"
                }
            row["peak_rss_mb"] = peak_rss_mb()
            report["runs"].append(row)
            typer.echo(
                f"{size}px x{objects}: "
                + ", ".join(
                    f"{name} step {t['step']['median_ms']:.0f} ms" for name, t in row["backends"].items()
                )
            )
    return report


def run_stream(
    folder: Path, frames: int, objects: int, sample_every: int, threads: int, providers: str
) -> dict:
    """The real tracker over a long synthetic stream (moving squares), RSS sampled every `sample_every`."""
    from vigil360.models.sam2_tracker import Sam2Tracker

    tracker = Sam2Tracker(folder, providers=providers, threads=threads)
    size = 2 * tracker.image_size
    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    for obj in range(objects):
        x = 10 + obj * size // (objects + 1)
        tracker.add_object(obj, 0, box_xyxy=[x, size // 3, x + size // 6, size // 3 + size // 6])
    samples = []
    for index in range(frames):
        frame = background.copy()
        for obj in range(objects):
            x = (10 + obj * size // (objects + 1) + index) % (size - size // 6)
            frame[size // 3 : size // 3 + size // 6, x : x + size // 6] = (200, 60 + 40 * obj, 40)
        tracker.step(frame, index)
        if index % sample_every == 0 or index == frames - 1:
            samples.append({"frame": index, "rss_mb": current_rss_mb(), "bank_bytes": tracker.memory_bytes()})
    after_warmup = [s["rss_mb"] for s in samples if s["frame"] >= min(200, frames // 2)]
    return {
        "frames": frames,
        "objects": objects,
        "image_size": tracker.image_size,
        "samples": samples,
        "rss_growth_after_warmup_mb": (max(after_warmup) - min(after_warmup)) if after_warmup else 0.0,
        "bank_bytes_final": tracker.memory_bytes(),
        "peak_rss_mb": peak_rss_mb(),
    }


def markdown(report: dict) -> str:
    lines = [
        f"SAM2 latency ({report['model']}, {report['weights']} - latency is real, masks are not; "
        f"{report['machine']['processor']}, "
        f"{report['machine']['threads']} threads; memories={report['memories']}, "
        f"pointers={report['pointers']}; "
        f"median / p95 ms over {report['repeats']} runs after {report['warmup']} warm-up)",
        "",
        "| size | objects | backend | encoder | memory attn | decoder | memory enc | step "
        "| step vs torch | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        for name, timings in row["backends"].items():
            cells = [f"{timings[s]['median_ms']:.1f} / {timings[s]['p95_ms']:.1f}" for s in (*STAGES, "step")]
            ratio = row.get("speedup_vs_torch", {}).get(name)
            lines.append(
                f"| {row['image_size']} | {row['objects']} | {name} | "
                + " | ".join(cells)
                + f" | {'' if ratio is None else f'{ratio:.2f}x'} | {row['peak_rss_mb']:.0f} |"
            )
    if stream := report.get("stream"):
        lines += [
            "",
            f"Stream: {stream['frames']} frames at {stream['image_size']} px, {stream['objects']} object(s): "
            f"RSS growth after warm-up {stream['rss_growth_after_warmup_mb']:.1f} MB, bank "
            f"{stream['bank_bytes_final'] / 1e6:.2f} MB, peak RSS {stream['peak_rss_mb']:.0f} MB",
        ]
    return "\n".join(lines) + "\n"


@latency_app.command("sam2")
def latency_sam2_command(
    model: str = typer.Option("sam2.1_hiera_tiny", "--model"),
    sizes: str = typer.Option("1024,512", "--sizes", help="image sizes, comma-separated"),
    objects: str = typer.Option("1,4", "--objects", help="object counts, comma-separated"),
    memories: int = typer.Option(7, "--memories", help="spatial memories in the bank (SAM2: 7)"),
    pointers: int = typer.Option(16, "--pointers", help="object pointers (SAM2: up to 16)"),
    warmup: int = typer.Option(2, "--warmup"),
    repeats: int = typer.Option(10, "--repeats"),
    threads: int = typer.Option(2, "--threads"),
    providers: str = typer.Option("cpu", "--providers", help="auto | cpu | cuda | tensorrt"),
    quantize: bool = typer.Option(False, "--int8", help="also time onnxruntime dynamic int8 graphs"),
    no_torch: bool = typer.Option(False, "--no-torch", help="skip the torch eager baseline"),
    stream_frames: int = typer.Option(0, "--stream-frames", help="also run the tracker over N frames (RSS)"),
    stream_size: int = typer.Option(128, "--stream-size", help="image size of the stream run"),
    lean: str | None = typer.Option(
        None, "--lean", help="also time a smaller memory-attention input, MEMORIES,POINTERS (e.g. 3,4)"
    ),
    export_root: Path = typer.Option(
        Path("exports/bench"), "--export-dir", help="random-init exports (reused)"
    ),
    out: Path = typer.Option(Path("bench-results/latency_sam2"), "--out", help="JSON + Markdown go here"),
) -> None:
    """Per-stage and full-step latency (median, p95), torch eager vs onnxruntime, plus peak RSS."""
    from vigil360.records import atomic_write_text

    backends = ("ort",) if no_torch else ("torch", "ort")
    report = run_latency(
        model,
        _ints(sizes),
        _ints(objects),
        memories,
        pointers,
        warmup,
        repeats,
        threads,
        providers,
        export_root,
        quantize,
        backends,
        _lean(lean),
    )
    if stream_frames > 0:
        from vigil360.export.sam2 import ensure_export

        folder = export_root / f"{model}_{stream_size}"
        ensure_export(folder, model=model, image_size=stream_size, seed=0)
        report["stream"] = run_stream(
            folder, stream_frames, 1, max(1, stream_frames // 60), threads, providers
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "latency_sam2.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    atomic_write_text(out / "latency_sam2.md", table)
    typer.echo(table)
