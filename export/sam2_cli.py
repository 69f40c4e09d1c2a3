"""The `vigil360 export sam2` command."""

from __future__ import annotations

from pathlib import Path

import typer

from vigil360.errors import UserError
from vigil360.export.cli import export_app
from vigil360.export.sam2 import export_sam2
from vigil360.export.sam2_graphs import DEFAULT_OPSET
from vigil360.export.sam2_model import MODELS

# Paragraphs are single lines: the help renderer keeps line breaks as written.
_EXPORT_SAM2_HELP = (
    "Export SAM2's four graphs to ONNX, check each against torch, write manifest.json.\n\n"
    "The graphs (image encoder, prompt encoder + mask decoder, memory attention, memory encoder) go to OUT "
    "with a manifest (hashes, tensor signatures, parity against torch); `vigil360 run --sam2 OUT` and "
    "`vigil360 export trt OUT` read that folder.\n\n"
) + """Examples:

  vigil360 export sam2 --checkpoint sam2.1_t.pt --out exports/sam2

  vigil360 export sam2 --checkpoint sam2.1_t.pt --image-size 512 --out e512

  vigil360 export sam2 --model sam2.1_hiera_small --checkpoint s.pt --out es

  vigil360 export sam2 --random-init --seed 0 --image-size 256 --out r256
"""


@export_app.command("sam2", help=_EXPORT_SAM2_HELP)
def export_sam2_command(
    model: str = typer.Option("sam2.1_hiera_tiny", "--model", help=f"one of: {', '.join(MODELS)}"),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="a SAM2 .pt checkpoint (see `models pull`)"
    ),
    random_init: bool = typer.Option(
        False, "--random-init", help="untrained weights of the real architecture"
    ),
    seed: int = typer.Option(0, "--seed", help="seed for --random-init"),
    image_size: int = typer.Option(1024, "--image-size", help="square model input; multiple of 32"),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset"),
    config: str | None = typer.Option(
        None, "--config", help="override the Hydra config (other SAM2 families)"
    ),
    out: Path = typer.Option(Path("exports/sam2"), "--out", help="folder for the graphs and manifest.json"),
) -> None:
    if random_init == (checkpoint is not None):
        raise UserError("choose the weights: --checkpoint PATH, or --random-init [--seed N]")
    manifest = export_sam2(model, out, image_size, opset, checkpoint, seed if random_init else None, config)
    for graph in manifest.files:
        figures = ", ".join(f"{k}={v:.2g}" for k, v in graph.parity_max_abs.items())
        typer.echo(f"{graph.role:17s} {graph.size_bytes / 1e6:7.1f} MB  {figures}")
    typer.echo(f"wrote {Path(out) / 'manifest.json'} ({manifest.weights}, {manifest.image_size} px)")
