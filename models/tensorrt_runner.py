"""Run a serialized TensorRT engine with numpy in and out (the native-engine backend of Sam2Tracker).

Buffers are torch CUDA tensors (torch is already part of a GPU install), the TensorRT 10
name-based I/O API sets shapes and addresses, and one CUDA stream runs each call.
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
        keep = []
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
        self.stream.synchronize()
        return {
            name: tensor.float().cpu().numpy() if tensor.is_floating_point() else tensor.cpu().numpy()
            for name, tensor in outputs.items()
        }
