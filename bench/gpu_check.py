"""`vigil360 bench gpu --out DIR` (`make gpu-check`): every GPU figure from one command, resumably.

For a GPU lent for minutes: each step below runs in its own process with its own timeout, its
result is saved as it ends (a rerun skips finished steps), and a failing step does not stop the
others. Steps that need a GPU, TensorRT or onnxruntime's CUDA provider are skipped with the
reason on a machine without them; exports run anywhere. Outputs: DIR/gpu.json (validated
`GpuReport`), DIR/gpu.md (a table for BENCHMARKS.md) and DIR/steps/*.json.

Steps: the machine (GPU, driver, CUDA, TensorRT, onnxruntime providers); random-init SAM2.1-tiny
exports at 512 and 1024 px; TensorRT engines fp32 and fp16 (fp16 with normalisation and softmax
layers held in fp32 - TensorRT 10.3 / JetPack 6.2 gives wrong ViT outputs otherwise); fp16 vs
fp32 parity of the encoder and mask logits (max |diff|, mask IoU); a full SAM2 tracking step
(1 and 4 objects) in torch eager on CUDA (fp32, and bf16 autocast where the card has it),
onnxruntime's CUDA and TensorRT providers and the native engines; the VLM export and its
per-token decode and first-token time with onnxruntime on CUDA.
"""

from __future__ import annotations

import functools
import json
import platform
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import BaseModel, ConfigDict, Field

from vigil360.bench.cli import bench_app
from vigil360.bench.step_runner import Skip, Step, StepContext, StepResult, run_steps

SAM2_MODEL = "sam2.1_hiera_tiny"
SIZES = (512, 1024)
REPORT_VERSION = "1"


class GpuReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_version: str = REPORT_VERSION
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    host: str = Field(default_factory=platform.node)
    weights: str = "random-init (SAM2.1-tiny seed 0; VLM seed 0): latency is real, outputs are not"
    steps: list[StepResult]


def require_gpu() -> None:
    from vigil360.export.tensorrt import gpu_problem

    problem = gpu_problem()
    if problem is not None:
        raise Skip(problem)


def require_cuda() -> None:
    """torch sees a CUDA GPU (TensorRT not needed: torch and onnxruntime's CUDA provider still time)."""
    try:
        import torch
    except ImportError:
        raise Skip("torch is not installed") from None
    if not torch.cuda.is_available():
        raise Skip(f"no CUDA GPU is visible to torch (torch {torch.__version__}, built for CUDA {torch.version.cuda})")


def require_provider(name: str) -> None:
    from vigil360.models.runtime import available_providers

    if name not in available_providers():
        raise Skip(f"onnxruntime offers no {name} here (providers: {', '.join(available_providers())}); "
                   "install onnxruntime-gpu on the GPU machine")


def environment(_: StepContext) -> dict:
    import onnxruntime

    from vigil360.models.runtime import available_providers

    found: dict = {"platform": platform.platform(), "onnxruntime": onnxruntime.__version__,
                   "onnxruntime_providers": available_providers()}
    smi = shutil.which("nvidia-smi")
    if smi:
        query = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,compute_cap",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=False)
        found["nvidia_smi"] = query.stdout.strip() or query.stderr.strip()
    else:
        found["nvidia_smi"] = "not found (no NVIDIA driver on this machine)"
    try:
        import torch

        found.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            capability = ".".join(map(str, torch.cuda.get_device_capability(0)))
            found.update(gpu=torch.cuda.get_device_name(0), capability=capability, bf16=torch.cuda.is_bf16_supported())
    except ImportError:
        found["torch"] = "not installed"
    try:
        import tensorrt

        found["tensorrt"] = tensorrt.__version__
    except ImportError:
        found["tensorrt"] = "not installed"
    return found


def _sam2_folder(context: StepContext, size: int) -> Path:
    return context.out / "exports" / f"{SAM2_MODEL}_{size}"


def export_sam2_step(context: StepContext, size: int) -> dict:
    from vigil360.export.sam2_cached import ensure_export

    manifest = ensure_export(_sam2_folder(context, size), model=SAM2_MODEL, image_size=size, seed=0)
    return {"folder": str(_sam2_folder(context, size)), "weights": manifest.weights,
            "parity_max_abs": {g.role: max(g.parity_max_abs.values(), default=0.0) for g in manifest.files
                               if g.format == "onnx"}}


def engines_step(context: StepContext, size: int, precision: str) -> dict:
    require_gpu()
    from vigil360.export.tensorrt import build_engines

    started = time.perf_counter()
    manifest = build_engines(_sam2_folder(context, size), fp16=precision == "fp16",
                             keep_norms_fp32=precision == "fp16")
    engines = [g for g in manifest.files if g.format == "engine" and g.path.endswith(f".{precision}.engine")]
    return {"engines": {g.role: g.path for g in engines}, "build_s": time.perf_counter() - started,
            "metadata": engines[0].metadata if engines else {}}


def fp16_parity_step(context: StepContext, size: int) -> dict:
    """fp16 vs fp32 engines on the same inputs: encoder features, mask logits and mask IoU."""
    require_gpu()
    import numpy as np

    from vigil360.export.sam2_graphs import example_inputs, wrapper_for
    from vigil360.export.sam2_model import build_model
    from vigil360.models.tensorrt_runner import EngineGraph

    folder = _sam2_folder(context, size)
    sam = build_model(SAM2_MODEL, size, seed=0)
    inputs = example_inputs(sam, objects=4, points=1)
    figures = {}
    for role in ("image_encoder", "mask_decoder"):
        names = wrapper_for(sam, role).input_names
        feeds = {n: t.numpy() for n, t in zip(names, inputs[role], strict=True)}
        fp32 = EngineGraph(folder / f"{role}.fp32.engine")(**feeds)
        fp16 = EngineGraph(folder / f"{role}.fp16.engine")(**feeds)
        for name, reference in fp32.items():
            scale = float(np.abs(reference).max())
            figures[f"{role}.{name}.max_abs"] = float(np.abs(fp16[name] - reference).max())
            figures[f"{role}.{name}.max_abs_value"] = scale
        if role == "mask_decoder":
            logits = next(n for n in fp32 if "mask" in n)
            a, b = fp32[logits] > 0, fp16[logits] > 0
            union = np.logical_or(a, b).sum()
            figures["mask_iou_fp16_vs_fp32"] = float(np.logical_and(a, b).sum() / union) if union else 1.0
    return figures


def sam2_timing_step(context: StepContext, size: int, warmup: int, repeats: int) -> dict:
    require_cuda()
    from vigil360.bench.latency_sam2 import run_latency

    figures = {}
    runs = [("cuda", ("torch", "ort")), ("tensorrt", ("ort",))]
    for providers, backends in runs:
        try:
            require_provider("CUDAExecutionProvider" if providers == "cuda" else "TensorrtExecutionProvider")
        except Skip as reason:
            figures[f"ort-{providers}"] = f"skipped: {reason}"
            continue
        report = run_latency(SAM2_MODEL, [size], [1, 4], 7, 16, warmup, repeats, 4, providers,
                             context.out / "exports", False, backends, torch_device="cuda")
        for row in report["runs"]:
            for backend, timings in row["backends"].items():
                label = backend if backend.startswith("torch") else f"{backend}-{providers}"
                figures[f"{label}.objects_{row['objects']}.step_ms"] = timings["step"]["median_ms"]
    figures.update(_engine_step_ms(context, size, warmup, repeats))
    return figures


def _engine_step_ms(context: StepContext, size: int, warmup: int, repeats: int) -> dict:
    """A full tracking step through the native engines (each precision whose engines were built)."""
    from vigil360.bench.latency import time_it
    from vigil360.bench.latency_sam2 import STAGES, _feeds
    from vigil360.export.sam2_graphs import wrapper_for
    from vigil360.export.sam2_model import build_model
    from vigil360.models.tensorrt_runner import EngineGraph

    folder = _sam2_folder(context, size)
    sam = build_model(SAM2_MODEL, size, seed=0)
    figures = {}
    for precision in ("fp32", "fp16"):
        if not all((folder / f"{stage}.{precision}.engine").is_file() for stage in STAGES):
            continue
        graphs = {stage: EngineGraph(folder / f"{stage}.{precision}.engine") for stage in STAGES}
        for objects in (1, 4):
            inputs = _feeds(sam, objects, 7, 16)
            feeds = {stage: {n: t.numpy() for n, t in zip(wrapper_for(sam, stage).input_names, args, strict=True)}
                     for stage, args in inputs.items()}

            def step(graphs=graphs, feeds=feeds):
                for stage in STAGES:
                    graphs[stage](**feeds[stage])

            figures[f"trt-engine-{precision}.objects_{objects}.step_ms"] = time_it(step, warmup, repeats).median_ms
    return figures


def vlm_export_step(context: StepContext, architecture: str) -> dict:
    from vigil360.export.vlm import export_vlm
    from vigil360.models.manifest import load_manifest
    from vigil360.models.vlm.qwen.random_init import ARCHITECTURES as QWEN
    from vigil360.models.vlm.qwen.random_init import write_random_qwen
    from vigil360.models.vlm.random_init import write_random_vlm

    model_dir = context.out / "exports" / f"{architecture}-random"
    onnx_dir = context.out / "exports" / f"{architecture}-onnx"
    if not (model_dir / "config.json").is_file():
        (write_random_qwen if architecture in QWEN else write_random_vlm)(model_dir, architecture)
    if not (onnx_dir / "manifest.json").is_file():
        export_vlm(model_dir, onnx_dir)
    manifest = load_manifest(onnx_dir, kind="vlm", verify=False)
    return {"folder": str(onnx_dir), "family": manifest.family, "parity": manifest.notes.get("parity")}


def vlm_cuda_step(context: StepContext, tokens: int, warmup: int, repeats: int) -> dict:
    require_provider("CUDAExecutionProvider")
    import numpy as np

    from vigil360.models.vlm.backends.common import DecodeClock
    from vigil360.models.vlm.factory import load_onnx_backend
    from vigil360.models.vlm.interfaces import VlmRequest
    from vigil360.models.vlm.prompts import caption_request

    runtime = load_onnx_backend(context.results["vlm_export"].data["folder"], providers="cuda")
    base = caption_request("A person snatches a phone from a pedestrian.")
    image = np.random.default_rng(0).integers(0, 256, (448, 448, 3), dtype=np.uint8)
    request = VlmRequest(images=[image], system=base.system, user=base.user, max_new_tokens=tokens)
    first, per_token = [], []
    for index in range(warmup + repeats):
        clock = DecodeClock()
        for _ in runtime.decode_steps(runtime.prepare(request), tokens, clock, ignore_eos=True):
            pass
        if index >= warmup:
            first.append((clock.first_token - clock.start) * 1000.0)
            per_token.append(clock.per_token_s() * 1000.0)
    return {"providers": runtime.decoder.get_providers(), "tokens": tokens,
            "first_token_ms": float(np.median(first)), "per_token_ms": float(np.median(per_token)),
            "per_token_ms_min_max": [min(per_token), max(per_token)],
            "tokens_per_s": 1000.0 / float(np.median(per_token))}


def gpu_steps(vlm_architecture: str = "qwen3_vl-0.6b", warmup: int = 2, repeats: int = 10) -> list[Step]:
    steps = [Step("environment", environment, timeout_s=60)]
    for size in SIZES:
        steps.append(Step(f"export_sam2_{size}", functools.partial(export_sam2_step, size=size), timeout_s=420))
    for size in SIZES:
        for precision in ("fp32", "fp16"):
            steps.append(Step(f"trt_sam2_{size}_{precision}",
                              functools.partial(engines_step, size=size, precision=precision),
                              timeout_s=420, needs=(f"export_sam2_{size}",)))
        steps.append(Step(f"trt_fp16_parity_{size}", functools.partial(fp16_parity_step, size=size), timeout_s=180,
                          needs=(f"trt_sam2_{size}_fp32", f"trt_sam2_{size}_fp16")))
    for size in SIZES:
        steps.append(Step(f"sam2_step_timing_{size}",
                          functools.partial(sam2_timing_step, size=size, warmup=warmup, repeats=repeats),
                          timeout_s=420, needs=(f"export_sam2_{size}",)))
    steps.append(Step("vlm_export", functools.partial(vlm_export_step, architecture=vlm_architecture), timeout_s=600))
    steps.append(Step("vlm_cuda_decode", functools.partial(vlm_cuda_step, tokens=32, warmup=1, repeats=3),
                      timeout_s=300, needs=("vlm_export",)))
    return steps


def markdown(report: GpuReport) -> str:
    environment_data = next((s.data for s in report.steps if s.name == "environment"), {})
    card = environment_data.get("gpu") or environment_data.get("nvidia_smi") or "no GPU"
    providers = ", ".join(environment_data.get("onnxruntime_providers", []))
    rows = [f"GPU check - {card}; TensorRT {environment_data.get('tensorrt', '?')}, onnxruntime "
            f"{environment_data.get('onnxruntime', '?')} ({providers}); {report.weights}; {report.created}", "",
            "| step | status | s | figures / reason |", "|---|---|---|---|"]
    for step in report.steps:
        if step.status == "ok":
            shown = "; ".join(f"{k}: {_fmt(v)}" for k, v in step.data.items() if k != "traceback")
        else:
            shown = step.reason or ""
        rows.append(f"| {step.name} | {step.status} | {step.seconds:.1f} | {shown.replace('|', '/')} |")
    return "\n".join(rows)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


@bench_app.command("gpu")
def gpu_command(
    out: Path = typer.Option(Path("bench-results/gpu"), "--out", help="folder for gpu.json, gpu.md and step results"),
    only: str | None = typer.Option(None, "--steps", help="comma-separated step names to run (default: all)"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="rerun steps that failed or timed out"),
    vlm_architecture: str = typer.Option("qwen3_vl-0.6b", help="random-weights VLM to export and time"),
    repeats: int = typer.Option(10, min=1, help="timed repeats per SAM2 measurement"),
) -> None:
    """Report the GPU stack, export SAM2/VLM, build and check TensorRT engines, time everything (resumable)."""
    from vigil360.errors import UserError
    from vigil360.records import atomic_write_text

    steps = gpu_steps(vlm_architecture, repeats=repeats)
    if only:
        wanted = {name.strip() for name in only.split(",") if name.strip()}
        unknown = wanted - {s.name for s in steps}
        if unknown:
            raise UserError(f"unknown step(s) {sorted(unknown)}; steps: {', '.join(s.name for s in steps)}")
        steps = [s for s in steps if s.name in wanted]

    def show(result: StepResult, reused: bool) -> None:
        typer.echo(f"{result.name:24s} {result.status:8s} {result.seconds:7.1f} s"
                   f"{' (saved result)' if reused else ''}{'  ' + result.reason if result.reason else ''}")

    log = run_steps(steps, out, retry_failed=retry_failed, on_result=show)
    report = GpuReport(steps=list(log.results.values()))
    atomic_write_text(out / "gpu.json", report.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / "gpu.md", markdown(report) + "\n")
    typer.echo(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")


def load_report(path: str | Path) -> GpuReport:
    return GpuReport.model_validate(json.loads(Path(path).read_text()))
