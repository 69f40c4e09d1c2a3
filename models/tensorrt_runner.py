"""Run a serialized TensorRT engine with numpy in and out (the native-engine backend of Sam2Tracker).

Buffers are torch CUDA tensors (torch is already part of a GPU install), the TensorRT 10
name-based I/O API sets shapes and addresses, and one CUDA stream carries each call from end to end:
the host-to-device copies, the engine, and the device-to-host copies are all queued on it, so the
engine cannot read an input before its copy lands (torch would otherwise copy on its default stream
while TensorRT runs on this non-blocking one), and outputs are read only after it is synchronised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil360.errors import UserError


def tensorrt_usable() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class EngineGraph:
    """Callable like `OnnxGraph`: keyword numpy inputs -> dict of numpy outputs."""

    def __init__(self, path: str | Path) -> None:
        import tensorrt as trt
        import torch

        self.torch = torch
        path = Path(path)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise UserError(
                f"{path}: TensorRT could not load this engine (built for another GPU or TensorRT?)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {
            n: torch.from_numpy(np.zeros(1, dtype=trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
            for n in names
        }
        self.stream = torch.cuda.Stream()

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise UserError(f"engine inputs missing: {sorted(missing)}")
        keep = []
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda", self.dtypes[name])
                keep.append(tensor)
                self.context.set_input_shape(name, tuple(tensor.shape))
                self.context.set_tensor_address(name, int(tensor.data_ptr()))
            outputs = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device="cuda")
                self.context.set_tensor_address(name, int(outputs[name].data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise UserError("TensorRT execution failed")
            host = {
                name: (tensor.float() if tensor.is_floating_point() else tensor).to("cpu", non_blocking=True)
                for name, tensor in outputs.items()
            }
        self.stream.synchronize()
        return {name: tensor.numpy() for name, tensor in host.items()}


def pick_engines(files, roles, precision: str | None) -> dict:
    """The engine file per role at one precision; several precisions need an explicit choice.

    A folder can hold fp32, fp16 and int8 engines side by side (`vigil360 export trt` per precision);
    taking whichever the manifest lists last would change the model's numbers without a word.
    """
    engines = [g for g in files if g.format == "engine"]
    found = sorted({g.metadata.get("precision", "unknown") for g in engines})
    if precision is None:
        if len(found) > 1:
            raise UserError(f"engines of several precisions ({', '.join(found)}): choose one "
                            "(engine_precision=..., e.g. 'fp16'), or keep one precision per exported folder")
        precision = found[0] if found else None
    chosen = {g.role: g for g in engines if g.metadata.get("precision", "unknown") == precision}
    if not set(roles) <= set(chosen):
        lacking = sorted(set(roles) - set(chosen))
        raise UserError(f"no {precision} engines for {', '.join(lacking)} (found precisions: {', '.join(found)}); "
                        f"run `vigil360 export trt` for that precision")
    return {role: chosen[role] for role in roles}
