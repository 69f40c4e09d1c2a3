"""A random-init SAM2 export made once and reused while it matches (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

from vigil360.errors import UserError
from vigil360.export.sam2 import export_sam2
from vigil360.export.sam2_graphs import DEFAULT_OPSET


def ensure_export(
    out: str | Path,
    model: str = "sam2.1_hiera_tiny",
    image_size: int = 1024,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
):
    """A random-init export at `out`, reused when its manifest already matches (tests, benchmarks)."""
    from vigil360.models.manifest import load_manifest

    out = Path(out)
    if (out / "manifest.json").is_file():
        try:
            manifest = load_manifest(out, kind="sam2", verify=False)
        except UserError:
            manifest = None
        if manifest is not None and (
            manifest.model,
            manifest.image_size,
            manifest.weights,
            manifest.opset,
        ) == (model, image_size, f"random-init, seed {seed}", opset):
            return manifest
    return export_sam2(model, out, image_size, opset, seed=seed)
