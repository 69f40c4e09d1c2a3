"""`vigil360 export sam2`: a SAM2-family model -> four ONNX graphs + manifest.json, checked against torch.

The pieces: `sam2_model` builds the model and reads its host-side rules, `sam2_graphs` wraps and
exports each graph, `sam2_parity` checks them; this module runs them in order and writes the
manifest. The command is in `sam2_cli`, the reusable random-init export for tests and
benchmarks in `sam2_cached`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vigil360.errors import UserError
from vigil360.export.sam2_graphs import (
    DEFAULT_OPSET,
    ROLES,
    dynamic_axes,
    example_inputs,
    export_graph,
    tensor_specs,
    wrapper_for,
)
from vigil360.export.sam2_model import MODELS, build_model, host_constants, tracker_config
from vigil360.export.sam2_parity import parity, reference_checks

CONSTANTS_FILE = "constants.npz"


def export_sam2(
    model: str,
    out: str | Path,
    image_size: int = 1024,
    opset: int = DEFAULT_OPSET,
    checkpoint: str | Path | None = None,
    seed: int | None = None,
    config: str | None = None,
    parity_bound: float = 1e-3,
):
    """Export, verify and describe the four graphs; returns the written Manifest."""
    from vigil360.models.checkpoints import checkpoint_weights_label
    from vigil360.models.manifest import Manifest, describe_file, package_versions, write_manifest
    from vigil360.models.runtime import create_session

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sam = build_model(model, image_size, checkpoint, seed, config)
    inputs = example_inputs(sam)
    files = []
    worst: dict[str, float] = {}
    for role in ROLES:
        module = wrapper_for(sam, role)
        relative = f"{role}.onnx"
        started = time.perf_counter()
        export_graph(module, inputs[role], out / relative, opset, dynamic_axes(role))
        export_s = time.perf_counter() - started
        session = create_session(out / relative, providers="cpu")
        figures = parity(session, module, inputs[role])
        worst[role] = max(figures.values())
        graph_inputs, graph_outputs = tensor_specs(out / relative)
        files.append(
            describe_file(
                out,
                relative,
                role,
                inputs=graph_inputs,
                outputs=graph_outputs,
                parity_max_abs=figures,
                metadata={"export_seconds": f"{export_s:.1f}"},
            )
        )
    np.savez(out / CONSTANTS_FILE, **host_constants(sam))
    files.append(describe_file(out, CONSTANTS_FILE, "constants", format="data"))
    family = MODELS[model].family if model in MODELS else "custom"
    manifest = Manifest(
        kind="sam2",
        model=model,
        family=family,
        weights=checkpoint_weights_label(checkpoint)
        if checkpoint is not None
        else f"random-init, seed {seed}",
        config=tracker_config(sam, config or MODELS[model].config),
        image_size=image_size,
        opset=opset,
        files=files,
        versions=package_versions(),
        notes={
            **reference_checks(sam),
            "parity_bound": f"{parity_bound:g}",
            "parity_inputs": "example_inputs(seed=0): 2 objects, 3 memories, 4 pointers, 2 points",
        },
    )
    write_manifest(out, manifest)
    bad = {role: value for role, value in worst.items() if value > parity_bound}
    if bad:
        raise UserError(
            f"export parity above {parity_bound:g} for {bad}; graphs and manifest written to {out} "
            "for inspection"
        )
    return manifest
