"""The manifest that export writes and runtimes read: one format for SAM2 and the VLM.

It records what was exported (model, config, weights' provenance), every file with its
sha256, the graphs' input/output signatures, the parity figures measured against torch,
and package versions - so a runtime can refuse a folder that does not match what it expects,
and a benchmark can say exactly what it measured.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.errors import MissingModelError, UserError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = "1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(_Strict):
    name: str
    shape: list[int | str] = Field(description="ints for fixed axes, names for dynamic ones")
    dtype: str


class GraphFile(_Strict):
    role: str = Field(description="e.g. image_encoder, mask_decoder, memory_attention, vision, decoder")
    path: str = Field(description="relative to the manifest's folder")
    format: Literal["onnx", "engine", "data"] = "onnx"
    sha256: str
    size_bytes: int
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    parity_max_abs: dict[str, float] = Field(
        default_factory=dict, description="max |onnx - torch| per output on the export check's inputs"
    )
    metadata: dict[str, str] = Field(default_factory=dict)


class Manifest(_Strict):
    manifest_version: str = MANIFEST_VERSION
    kind: Literal["sam2", "vlm"]
    model: str = Field(description="e.g. sam2.1_hiera_tiny or the VLM's folder name")
    family: str = Field(description="architecture family, e.g. sam2.1, edgetam, idefics3")
    weights: str = Field(description="'sha256:<hex>' of the checkpoint, or 'random-init, seed N'")
    config: dict = Field(default_factory=dict)
    image_size: int | None = None
    opset: int | None = None
    precision: str = "fp32"
    files: list[GraphFile] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: dict[str, str] = Field(default_factory=dict)

    def file(self, role: str) -> GraphFile:
        for graph in self.files:
            if graph.role == role:
                return graph
        raise UserError(f"manifest for {self.model} has no {role!r} graph (has: "
                        f"{', '.join(g.role for g in self.files)})")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names: tuple[str, ...] = ("torch", "onnx", "onnxruntime", "onnxscript", "sam2",
                                                "transformers", "tensorrt", "numpy")) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_file(folder: Path, relative: str, role: str, **fields) -> GraphFile:
    path = folder / relative
    return GraphFile(role=role, path=relative, sha256=sha256_file(path), size_bytes=path.stat().st_size,
                     **fields)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    from vigil360.records import atomic_write_text

    path = Path(folder) / MANIFEST_NAME
    atomic_write_text(path, manifest.model_dump_json(indent=2) + "\n")
    return path


def load_manifest(folder: str | Path, *, kind: str | None = None, verify: bool = True) -> Manifest:
    """Read and check an exported folder; `verify` re-hashes every file (catches truncation)."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise MissingModelError(
            f"{folder}: no {MANIFEST_NAME}; export a model first (e.g. `vigil360 export sam2 --out {folder}`)"
        )
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except ValidationError as error:
        from vigil360.records import describe_validation_error

        raise UserError(describe_validation_error(error, str(path))) from None
    if kind is not None and manifest.kind != kind:
        raise UserError(f"{path}: this is a {manifest.kind} export, expected {kind}")
    for graph in manifest.files:
        file = folder / graph.path
        if not file.is_file():
            raise MissingModelError(f"{path}: listed file {graph.path} is missing")
        if verify and (file.stat().st_size != graph.size_bytes or sha256_file(file) != graph.sha256):
            raise UserError(f"{file}: does not match the sha256/size in {MANIFEST_NAME} (corrupt or replaced)")
    return manifest
