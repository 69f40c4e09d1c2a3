"""The native TensorRT runner: one stream from input copy to output read, and no silent precision pick.

The stream logic is checked on any machine with stand-ins for torch's CUDA API and a TensorRT
execution context that record what runs on which stream; the real engines run in
tests/export/test_tensorrt.py where a GPU exists.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from vigil360.errors import UserError
from vigil360.models.manifest import GraphFile
from vigil360.models.tensorrt_runner import EngineGraph, pick_engines


class _Stream:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name
        self.cuda_stream = hash(name)

    def synchronize(self) -> None:
        self.log.append(("synchronize", self.name))


class _Tensor:
    def __init__(self, torch: _Torch, array: np.ndarray, device: str = "cpu") -> None:
        self.torch, self.array, self.device = torch, array, device
        self.shape = array.shape

    def to(self, device: str, dtype=None, non_blocking: bool = False) -> _Tensor:
        self.torch.log.append(("copy", f"{self.device}->{device}", self.torch.current.name))
        return _Tensor(self.torch, self.array.astype(dtype or self.array.dtype), device)

    def data_ptr(self) -> int:
        return id(self)

    def is_floating_point(self) -> bool:
        return self.array.dtype.kind == "f"

    def float(self) -> _Tensor:
        return self

    def numpy(self) -> np.ndarray:
        self.torch.log.append(("read", self.device))
        return self.array


class _Torch:
    """Just what EngineGraph calls: from_numpy, empty, and cuda.stream as a context manager."""

    def __init__(self) -> None:
        self.log: list = []
        self.default = _Stream(self.log, "default")
        self.current = self.default
        torch = self

        class _Cuda:
            @staticmethod
            @contextmanager
            def stream(stream: _Stream):
                previous, torch.current = torch.current, stream
                try:
                    yield
                finally:
                    torch.current = previous

        self.cuda = _Cuda

    def from_numpy(self, array: np.ndarray) -> _Tensor:
        return _Tensor(self, array)

    def empty(self, shape, dtype, device) -> _Tensor:
        self.log.append(("alloc", device, self.current.name))
        return _Tensor(self, np.full(shape, 7, dtype), device)


class _Context:
    def __init__(self, torch: _Torch) -> None:
        self.torch = torch
        self.shapes: dict = {}

    def set_input_shape(self, name, shape) -> None:
        self.shapes[name] = shape

    def set_tensor_address(self, name, address) -> None:
        pass

    def get_tensor_shape(self, name):
        return (2, 3)

    def execute_async_v3(self, stream_handle) -> bool:
        self.torch.log.append(("execute", stream_handle))
        return True


def _graph() -> tuple[EngineGraph, _Torch]:
    torch = _Torch()
    graph = object.__new__(EngineGraph)  # no engine file: the pieces __init__ would build, stood in
    graph.torch = torch
    graph.context = _Context(torch)
    graph.inputs, graph.outputs = ["image", "points"], ["masks"]
    graph.dtypes = {"image": np.float32, "points": np.float32, "masks": np.float32}
    graph.stream = _Stream(torch.log, "engine")
    return graph, torch


def test_inputs_engine_and_outputs_share_one_stream_and_outputs_wait_for_it() -> None:
    graph, torch = _graph()
    out = graph(image=np.zeros((1, 3, 4, 4), np.float32), points=np.ones((2, 2), np.float32))
    assert out["masks"].shape == (2, 3)
    log = torch.log
    copies = [entry for entry in log if entry[0] == "copy"]
    assert [c[1] for c in copies] == ["cpu->cuda", "cpu->cuda", "cuda->cpu"]
    assert all(c[2] == "engine" for c in copies), copies  # never torch's default stream
    assert all(entry[2] == "engine" for entry in log if entry[0] == "alloc")
    execute = log.index(("execute", graph.stream.cuda_stream))
    uploads = [i for i, entry in enumerate(log) if entry[:2] == ("copy", "cpu->cuda")]
    assert max(uploads) < execute  # queued before the engine on the same stream
    sync = log.index(("synchronize", "engine"))
    reads = [i for i, entry in enumerate(log) if entry[0] == "read"]
    assert reads and sync < min(reads)  # host reads only after the stream is done


def test_a_missing_input_is_named() -> None:
    graph, _ = _graph()
    with pytest.raises(UserError, match="points"):
        graph(image=np.zeros((1, 3, 4, 4), np.float32))


def _engine(role: str, precision: str | None) -> GraphFile:
    metadata = {} if precision is None else {"precision": precision}
    return GraphFile(role=role, path=f"{role}.{precision}.engine", format="engine", sha256="0" * 64, size_bytes=1,
                     metadata=metadata)


ROLES = ("encoder", "decoder")
BOTH = [_engine(r, p) for p in ("fp32", "fp16") for r in ROLES]


@pytest.mark.parametrize(
    ("files", "choice", "expected", "error"),
    [
        ([_engine(r, "fp16") for r in ROLES], None, "fp16", None),
        ([_engine(r, "fp16") for r in ROLES], "fp16", "fp16", None),
        (BOTH, None, None, "several precisions \\(fp16, fp32\\)"),
        (BOTH, "fp32", "fp32", None),
        (BOTH, "int8", None, "no int8 engines for decoder, encoder"),
        ([_engine("encoder", "fp16"), _engine("decoder", "fp32")], None, None, "several precisions"),
        ([_engine("encoder", "fp16")], None, None, "no fp16 engines for decoder"),
    ],
)
def test_engine_precision_is_never_picked_silently(files, choice, expected, error) -> None:
    if error is not None:
        with pytest.raises(UserError, match=error):
            pick_engines(files, ROLES, choice)
        return
    chosen = pick_engines(files, ROLES, choice)
    assert {g.metadata["precision"] for g in chosen.values()} == {expected} and set(chosen) == set(ROLES)
