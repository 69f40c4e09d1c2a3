"""onnxruntime session factory: one place that picks execution providers and threads.

Providers are tried in the order TensorRT EP, CUDA EP, CPU, keeping only those this
onnxruntime build offers, so the same code runs on a Jetson, a laptop GPU and a CPU box.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from vigil360.errors import MissingModelError, UserError

ProviderChoice = Literal["auto", "cpu", "cuda", "tensorrt"]

_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_BY_CHOICE = {
    "auto": _ORDER,
    "tensorrt": _ORDER,
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
}


class RunStopper:
    """Lets another thread stop the onnxruntime runs of the thread it is bound to.

    `stop()` sets `RunOptions.terminate`: a run in progress ends at its next graph node with an
    error, and later runs with these options fail at once. A model worker binds one in its own
    thread (`bind_stopper`) so the loop can end in-flight inference instead of letting the
    interpreter exit under a native call (onnxruntime then aborts the process).
    """

    def __init__(self) -> None:
        import onnxruntime as ort

        self.options = ort.RunOptions()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        self.options.terminate = True


_bound = threading.local()


def bind_stopper(stopper: RunStopper | None) -> None:
    """Make `stopper` govern every onnxruntime run this thread starts (None: unbind)."""
    _bound.stopper = stopper


def run_options():
    """The calling thread's RunOptions (None: onnxruntime's defaults); pass to `session.run`."""
    stopper = getattr(_bound, "stopper", None)
    return None if stopper is None else stopper.options


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


# Per input name: (min, opt, max) shapes of one TensorRT optimisation profile.
ShapeProfiles = dict[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]


def tensorrt_profile_options(profiles: ShapeProfiles) -> dict[str, str]:
    """onnxruntime TensorRT EP options for explicit shape profiles ("name:1x3x64x64,name2:...").

    Without them the provider builds an engine for the shapes it first sees and rebuilds whenever an
    input outgrows them - with a KV cache that is every few decoding steps.
    """
    def joined(index: int) -> str:
        return ",".join(f"{name}:{'x'.join(str(int(d)) for d in shapes[index])}" for name, shapes in profiles.items())

    for name, (low, opt, high) in profiles.items():
        ranked = len(low) == len(opt) == len(high)
        if not ranked or any(not a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise UserError(f"shape profile for {name!r} needs min <= opt <= max per axis, got {low}, {opt}, {high}")
    return {"trt_profile_min_shapes": joined(0), "trt_profile_opt_shapes": joined(1),
            "trt_profile_max_shapes": joined(2)}


def select_providers(choice: ProviderChoice = "auto", trt_cache_dir: str | Path | None = None,
                     trt_profiles: ShapeProfiles | None = None) -> list:
    """Providers for `choice` that this build offers; asking for a GPU that is absent is an error.

    `trt_profiles` (TensorRT EP only) fixes the engine's shape ranges up front; `trt_cache_dir` keeps
    built engines across runs.
    """
    if choice not in _BY_CHOICE:
        raise UserError(f"unknown provider choice {choice!r}; use one of {', '.join(_BY_CHOICE)}")
    have = set(available_providers())
    wanted = [p for p in _BY_CHOICE[choice] if p in have]
    if choice in ("cuda", "tensorrt") and wanted[0] == "CPUExecutionProvider":
        raise UserError(f"provider {choice!r} requested but this onnxruntime offers only {sorted(have)} "
                        "(install onnxruntime-gpu on a machine with an NVIDIA GPU)")
    providers: list = []
    for name in wanted:
        options: dict = {}
        if name == "TensorrtExecutionProvider":
            if trt_cache_dir is not None:
                options.update({"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache_dir),
                                "trt_timing_cache_enable": True})
            if trt_profiles:
                options.update(tensorrt_profile_options(trt_profiles))
        providers.append((name, options) if options else name)
    return providers


def create_session(
    path: str | Path,
    providers: ProviderChoice = "auto",
    threads: int | None = None,
    trt_cache_dir: str | Path | None = None,
    trt_profiles: ShapeProfiles | None = None,
):
    """An InferenceSession with full graph optimisation; `threads` caps intra-op threads."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise MissingModelError(f"{path}: ONNX graph not found (run the matching `vigil360 export` first)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        chosen = select_providers(providers, trt_cache_dir, trt_profiles)
        return ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        if isinstance(error, UserError):
            raise
        raise UserError(f"{path}: onnxruntime could not load this graph: {error}") from None
