"""`vigil360 export trt DIR`: TensorRT engines from an exported SAM2 folder, with the tensorrt Python API.

One engine per ONNX graph, an optimisation profile per dynamic axis (the axis names written by
`export sam2`: objects, points, memories, pointers), a shared timing cache (rebuilds take seconds
instead of minutes), and metadata (card, TensorRT version, precision, profile) recorded in the
folder's manifest next to the ONNX files, so `Sam2Tracker` can pick the engines up. Engines are
specific to a GPU model and TensorRT version: build them on the device that runs them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vigil360.errors import UserError
from vigil360.export.cli import export_app

# (min, opt, max) per dynamic axis name. `memories` allows the 7 SAM2 slots plus extra prompted
# frames; a fixed bank (min = max) is faster in TensorRT when memory use can be planned for it.
DEFAULT_RANGES: dict[str, tuple[int, int, int]] = {
    "objects": (1, 1, 8),
    "points": (1, 2, 16),
    "memories": (1, 7, 16),
    "pointers": (1, 16, 32),
}
TIMING_CACHE = "trt_timing.cache"


def gpu_problem() -> str | None:
    """Why engines cannot be built here (None when they can)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt Python package is not installed (pip install tensorrt, on an NVIDIA GPU machine)"
    try:
        import torch
    except ImportError:
        return "torch is needed for the GPU buffers"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible on this machine"
    return None


def profile_shapes(inputs, ranges: dict[str, tuple[int, int, int]] | None = None) -> dict[str, tuple]:
    """(min, opt, max) shapes per input from the manifest's TensorSpecs; fixed axes stay fixed."""
    ranges = {**DEFAULT_RANGES, **(ranges or {})}
    shapes = {}
    for spec in inputs:
        low, opt, high = [], [], []
        for dim in spec.shape:
            if isinstance(dim, int):
                low.append(dim)
                opt.append(dim)
                high.append(dim)
            elif dim in ranges:
                a, b, c = ranges[dim]
                low.append(a)
                opt.append(b)
                high.append(c)
            else:
                raise UserError(
                    f"input {spec.name}: no size range for dynamic axis {dim!r}; known: {', '.join(ranges)}"
                )
        shapes[spec.name] = (tuple(low), tuple(opt), tuple(high))
    return shapes


def _calibrator(trt, frames_dir: Path, image_size: int, config: dict, cache: Path, limit: int = 64):
    """Entropy calibration for the image encoder from real frames (jpg/png), preprocessed like the tracker."""
    import cv2
    import numpy as np
    import torch

    from vigil360.models.sam2_tracker import preprocess

    files = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        raise UserError(f"--calib {frames_dir}: no .jpg/.png frames to calibrate int8 with")

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.files = list(files)
            self.buffer = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if not self.files:
                return None
            frame = cv2.imread(str(self.files.pop(0)), cv2.IMREAD_COLOR)
            image = preprocess(frame, image_size, config["image_mean"], config["image_std"], "bgr")
            self.buffer = torch.from_numpy(np.ascontiguousarray(image)).cuda()
            return [int(self.buffer.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    inputs,
    fp16: bool = False,
    int8_calibrator=None,
    timing_cache: Path | None = None,
    workspace_gb: float = 4.0,
    keep_norms_fp32: bool = False,
) -> dict[str, str]:
    """Parse, build and serialise one engine; returns its metadata.

    `keep_norms_fp32` (with fp16) pins normalisation and softmax layers to fp32: TensorRT 10.3
    (JetPack 6.2) gives wrong ViT outputs when they run in fp16.
    """
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"{onnx_path}: TensorRT could not parse this graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    pinned = _pin_norms_fp32(trt, network, config) if keep_norms_fp32 and fp16 else 0
    if int8_calibrator is not None:
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = int8_calibrator
    cache = config.create_timing_cache(
        timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    )
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    shapes = profile_shapes(inputs)
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    engine_path.write_bytes(bytes(serialized))
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    precision = "int8" if int8_calibrator is not None else ("fp16" if fp16 else "fp32")
    return {
        "tensorrt": trt.__version__,
        "device": torch.cuda.get_device_name(0),
        "precision": precision,
        "profile": repr(shapes),
        "layers_pinned_fp32": str(pinned),
    }


def _pin_norms_fp32(trt, network, config) -> int:
    """Run normalisation, softmax and the reductions of decomposed LayerNorms in fp32; returns the count."""
    kinds = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in kinds:
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            pinned += 1
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def build_engines(
    folder: str | Path, fp16: bool = False, int8: bool = False, calib: str | Path | None = None,
    keep_norms_fp32: bool = False,
):
    """Engines for every ONNX graph of an exported SAM2 folder; updates its manifest. Returns it."""
    from vigil360.models.manifest import describe_file, load_manifest, write_manifest

    folder = Path(folder)
    manifest = load_manifest(folder, kind="sam2")
    problem = gpu_problem()
    if problem is not None:
        raise UserError(
            f"cannot build TensorRT engines here: {problem}. Run `vigil360 export trt {folder}` on the "
            "GPU machine that will run them (engines are tied to the GPU and TensorRT version)."
        )
    if int8 and calib is None:
        raise UserError("--int8 needs --calib FRAMES (a folder of representative .jpg/.png frames)")
    import tensorrt as trt

    suffix = "int8" if int8 else ("fp16" if fp16 else "fp32")
    files = [g for g in manifest.files if g.format != "engine" or not g.path.endswith(f".{suffix}.engine")]
    for graph in [g for g in manifest.files if g.format == "onnx"]:
        engine_rel = f"{Path(graph.path).stem}.{suffix}.engine"
        calibrator = None
        if int8 and graph.role == "image_encoder":
            calibrator = _calibrator(
                trt, Path(calib), int(manifest.image_size), manifest.config, folder / "int8_calibration.cache"
            )
        metadata = build_engine(
            folder / graph.path,
            folder / engine_rel,
            graph.inputs,
            fp16=fp16 or int8,
            int8_calibrator=calibrator,
            timing_cache=folder / TIMING_CACHE,
            keep_norms_fp32=keep_norms_fp32,
        )
        files.append(
            describe_file(
                folder,
                engine_rel,
                graph.role,
                format="engine",
                inputs=graph.inputs,
                outputs=graph.outputs,
                metadata=metadata,
            )
        )
    manifest.files = files
    write_manifest(folder, manifest)
    return manifest


@export_app.command("trt")
def export_trt_command(
    folder: Path = typer.Argument(..., help="a folder written by `vigil360 export sam2`"),
    fp16: bool = typer.Option(
        False, "--fp16", help="allow fp16 kernels (check parity: fp16 can hurt the encoder)"
    ),
    int8: bool = typer.Option(False, "--int8", help="int8 image encoder, calibrated on --calib frames"),
    calib: Path | None = typer.Option(None, "--calib", help="folder of representative frames for int8"),
) -> None:
    """Build TensorRT engines (profiles for the dynamic axes, timing cache, metadata in the manifest)."""
    manifest = build_engines(folder, fp16=fp16, int8=int8, calib=calib)
    for graph in manifest.files:
        if graph.format == "engine":
            typer.echo(
                f"{graph.role:17s} {graph.path} ({graph.metadata.get('precision')}, "
                f"{graph.metadata.get('device')})"
            )
