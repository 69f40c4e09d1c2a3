"""Session fixtures: one tiny random-weights model folder and its ONNX export, shared by the VLM tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import tiny_model_dir


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("vlm"))


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_vlm_dir, tmp_path_factory) -> Path:
    from vigil360.export.vlm import export_vlm

    out = tmp_path_factory.mktemp("vlm_onnx")
    export_vlm(tiny_vlm_dir, out, threads=1)
    return out


@pytest.fixture(scope="session")
def transformers_backend(tiny_vlm_dir):
    from vigil360.models.vlm.backends.transformers_backend import TransformersBackend

    return TransformersBackend(tiny_vlm_dir, threads=1)


@pytest.fixture(scope="session")
def onnx_backend(tiny_onnx_dir):
    from vigil360.models.vlm.backends.onnx_backend import OnnxBackend

    return OnnxBackend(tiny_onnx_dir, providers="cpu", threads=1)
