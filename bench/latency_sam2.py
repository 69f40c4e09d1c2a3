"""`vigil360 bench latency sam2`: per-stage and full-step latency, torch eager vs onnxruntime, and a
long-stream memory check.

Stages are timed on the same inputs for every backend: torch eager runs the export wrappers
(sam2's own modules; only RoPE is in its real form), onnxruntime runs the exported graphs, and
`ort-int8` runs them after onnxruntime's dynamic int8 quantisation (weights int8, activations
quantised on the fly), whose output error against fp32 is reported next to its timings. A "step"
is one tracking step with a full bank: encoder, memory attention over `--memories` memories and
`--pointers` pointers, decoder, memory encoder, for N objects. Backends are interleaved round by
round and speed-ups are per-round ratios against torch on the SAME bank; `--lean` adds a smaller
bank for every backend (an algorithmic change, reported as lean vs full per backend, never as a
backend speed-up). Memory is measured per backend, each in its own process. `--stream-frames` runs
the real Sam2Tracker over a synthetic stream and samples RSS, to show memory stays flat.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import typer

from vigil360.bench.latency import current_rss_mb, latency_app, machine_name, own_peak_rss_mb, peak_rss_mb
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
    from vigil360.export.sam2_graphs import example_inputs

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


def interleaved_timings(variants: dict, warmup: int, repeats: int) -> dict[str, dict]:
    """Per-stage and full-step times of every variant, interleaved: each round runs one full step of
    every variant in turn, so machine load hits them alike. `variants` maps a label to
    `run_stage(stage)`. Returns per label and stage the summary and the raw samples (ms)."""
    samples = {label: {stage: [] for stage in (*STAGES, "step")} for label in variants}
    for round_index in range(warmup + repeats):
        for label, run_stage in variants.items():
            step = 0.0
            for stage in STAGES:
                started = time.perf_counter()
                run_stage(stage)
                elapsed = (time.perf_counter() - started) * 1000.0
                step += elapsed
                if round_index >= warmup:
                    samples[label][stage].append(elapsed)
            if round_index >= warmup:
                samples[label]["step"].append(step)
    return {
        label: {stage: {**_summary(values), "samples": values} for stage, values in stages.items()}
        for label, stages in samples.items()
    }


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "median_ms": float(np.median(array)),
        "p95_ms": float(np.percentile(array, 95)),
        "min_ms": float(array.min()),
        "max_ms": float(array.max()),
    }


def round_ratios(numerator: dict, denominator: dict) -> dict[str, float]:
    """Step-time ratio numerator / denominator, round by round (both measured back to back)."""
    ratios = [a / b for a, b in zip(numerator["step"]["samples"], denominator["step"]["samples"], strict=True)]
    return {"median": float(np.median(ratios)), "min": float(min(ratios)), "max": float(max(ratios))}


def memory_probe(backend: str, folder: str, feeds_path: str, model: str, size: int, threads: int,
                 providers: str) -> dict:
    """Runs in its own process: RSS after imports, then peak RSS after loading one backend and running
    one full step - the backend's own footprint, not the benchmark process's accumulated peak."""
    if backend == "torch":
        import torch

        from vigil360.export.sam2_graphs import wrapper_for
        from vigil360.export.sam2_model import build_model
    else:
        from vigil360.models.runtime import create_session
    baseline = current_rss_mb()
    feeds = np.load(feeds_path)
    inputs = {stage: {k.split("/", 1)[1]: feeds[k] for k in feeds.files if k.startswith(stage + "/")}
              for stage in STAGES}
    if backend == "torch":
        torch.set_num_threads(threads)
        sam = build_model(model, size, seed=0)
        for stage in STAGES:
            module = wrapper_for(sam, stage)
            with torch.inference_mode():
                module(*(torch.from_numpy(inputs[stage][n]) for n in module.input_names))
    else:
        graphs = Path(folder) / ("int8" if backend == "ort-int8" else "")
        for stage in STAGES:
            create_session(graphs / f"{stage}.onnx", providers=providers, threads=threads).run(None, inputs[stage])
    peak = own_peak_rss_mb()
    return {"rss_after_imports_mb": baseline, "peak_rss_mb": peak, "backend_mb": peak - baseline}


def memory_per_backend(backends: list[str], folder: Path, numpy_inputs: dict, model: str, size: int,
                       threads: int, providers: str, work: Path) -> dict[str, dict]:
    """`memory_probe` for each backend in a fresh process (spawned: nothing inherited from this one)."""
    import multiprocessing

    feeds_path = work / f"feeds_{size}.npz"
    np.savez(feeds_path, **{f"{stage}/{name}": value for stage, named in numpy_inputs.items()
                            for name, value in named.items()})
    context = multiprocessing.get_context("spawn")
    results = {}
    for backend in backends:
        with context.Pool(1) as pool:
            results[backend] = pool.apply(
                memory_probe, (backend, str(folder), str(feeds_path), model, size, threads, providers)
            )
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
    measure_memory: bool = True,
    torch_device: str = "cpu",
) -> dict:
    """`torch_device="cuda"` runs the torch baseline on the GPU (synchronised per stage), in fp32 and,
    where the card supports it, under bf16 autocast ("torch-bf16")."""
    import torch

    from vigil360.export.sam2_cached import ensure_export
    from vigil360.export.sam2_graphs import wrapper_for
    from vigil360.export.sam2_model import build_model
    from vigil360.models.runtime import create_session

    torch.set_num_threads(threads)
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": machine_name(),
            "threads": threads,
            "providers": providers,
            "load_average": [round(v, 2) for v in os.getloadavg()],
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
            banks = {"": (memories, pointers)}
            if lean is not None:
                banks["-lean"] = lean
            variants = {}
            numpy_by_bank = {}
            for suffix, bank in banks.items():
                args = _feeds(sam, objects, *bank)
                named = {
                    stage: {n: t.numpy() for n, t in zip(modules[stage].input_names, values, strict=True)}
                    for stage, values in args.items()
                }
                numpy_by_bank[suffix] = named
                if "torch" in backends:
                    on_device = {stage: tuple(t.to(torch_device) for t in values) for stage, values in args.items()}

                    def torch_stage(stage, args=on_device, modules=modules, bf16=False):
                        with torch.inference_mode(), torch.autocast(torch_device, torch.bfloat16, enabled=bf16):
                            result = modules[stage](*args[stage])
                        if torch_device == "cuda":
                            torch.cuda.synchronize()  # time the kernels, not their launch
                        return result

                    variants[f"torch{suffix}"] = torch_stage
                    if torch_device == "cuda" and torch.cuda.is_bf16_supported():
                        variants[f"torch-bf16{suffix}"] = functools.partial(torch_stage, bf16=True)
                for name, stage_sessions in sessions.items():

                    def ort_stage(stage, stage_sessions=stage_sessions, feeds=named):
                        return stage_sessions[stage].run(None, feeds[stage])

                    variants[f"{name}{suffix}"] = ort_stage
            row = {
                "image_size": size,
                "objects": objects,
                "banks": {("lean" if suffix else "full"): list(bank) for suffix, bank in banks.items()},
                "backends": interleaved_timings(variants, warmup, repeats),
            }
            for name in sessions:
                if name != "ort":
                    row["backends"][name]["parity_max_abs_vs_fp32"] = {
                        stage: _max_difference(sessions[name][stage], sessions["ort"][stage], numpy_by_bank[""][stage])
                        for stage in STAGES
                    }
            # Backend speed-ups compare like with like: the same bank on both sides.
            if "torch" in backends:
                row["speedup_vs_torch_same_bank"] = {
                    label: round_ratios(row["backends"]["torch-lean" if label.endswith("-lean") else "torch"], timings)
                    for label, timings in row["backends"].items()
                    if not label.startswith("torch")
                }
            # The lean bank is an algorithmic change (fewer memories than SAM2 uses), reported apart.
            if lean is not None:
                row["lean_vs_full_same_backend"] = {
                    label: round_ratios(row["backends"][label.removesuffix("-lean")], timings)
                    for label, timings in row["backends"].items()
                    if label.endswith("-lean")
                }
            if measure_memory:
                probes = (["torch"] if "torch" in backends else []) + list(sessions)
                row["memory"] = memory_per_backend(
                    probes, folder, numpy_by_bank[""], model, size, threads, providers, export_root
                )
            report["runs"].append(row)
            typer.echo(
                f"{size}px x{objects}: "
                + ", ".join(f"{name} step {t['step']['median_ms']:.0f} ms" for name, t in row["backends"].items())
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


def _ratio(figure: dict | None) -> str:
    return "" if figure is None else f"{figure['median']:.2f}× ({figure['min']:.2f}–{figure['max']:.2f})"


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"SAM2 latency ({report['model']}, {report['weights']} - latency is real, masks are not; "
        f"{machine['processor']}, {machine['threads']} threads, load average {machine.get('load_average', 'n/a')}; "
        f"backends interleaved round by round; median (min–max) ms over {report['repeats']} rounds after "
        f"{report['warmup']} warm-up)",
        "",
        "Bank: full = SAM2's rule (memories/pointers as given); lean = fewer memories and pointers, an "
        "ALGORITHMIC change that departs from SAM2's output, compared with torch on the same lean bank.",
        "",
        "| size | objects | bank | backend | encoder | memory attn | decoder | memory enc | step "
        "| step speed-up vs torch, same bank | lean vs full, same backend |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        for name, timings in row["backends"].items():
            bank = "lean" if name.endswith("-lean") else "full"
            memories, pointers = row.get("banks", {}).get(bank, (report["memories"], report["pointers"]))
            cells = [
                f"{timings[s]['median_ms']:.1f} ({timings[s]['min_ms']:.1f}–{timings[s]['max_ms']:.1f})"
                for s in (*STAGES, "step")
            ]
            lines.append(
                f"| {row['image_size']} | {row['objects']} | {bank} ({memories} mem, {pointers} ptr) | {name} | "
                + " | ".join(cells)
                + f" | {_ratio(row.get('speedup_vs_torch_same_bank', {}).get(name))}"
                + f" | {_ratio(row.get('lean_vs_full_same_backend', {}).get(name))} |"
            )
    memory_rows = [(row, name, figures) for row in report["runs"] for name, figures in row.get("memory", {}).items()]
    if memory_rows:
        lines += [
            "",
            "Memory per backend, each in its own process (full bank, one step): peak RSS, and what the backend "
            "added to the process after its imports.",
            "",
            "| size | objects | backend | peak RSS MB | backend MB |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {row['image_size']} | {row['objects']} | {name} | {figures['peak_rss_mb']:.0f} "
            f"| {figures['backend_mb']:.0f} |"
            for row, name, figures in memory_rows
        ]
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
        None, "--lean", help="also time a smaller bank, MEMORIES,POINTERS (e.g. 3,4): an algorithmic change, "
        "timed for torch and onnxruntime alike"
    ),
    memory: bool = typer.Option(
        True, "--memory/--no-memory", help="peak RSS of each backend in its own process (one full step)"
    ),
    export_root: Path = typer.Option(
        Path("exports/bench"), "--export-dir", help="random-init exports (reused)"
    ),
    out: Path = typer.Option(Path("bench-results/latency_sam2"), "--out", help="JSON + Markdown go here"),
) -> None:
    """Per-stage and full-step latency, backends interleaved (median, min-max), plus each backend's memory."""
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
        memory,
    )
    if stream_frames > 0:
        from vigil360.export.sam2_cached import ensure_export

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
