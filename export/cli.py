"""`vigil360 export ...`: SAM2 and VLM to ONNX, ONNX to TensorRT.

Each export module defines its commands with `@export_app.command(...)`; importing it in
`register` is what wires it.
"""

from __future__ import annotations

import importlib

import typer

export_app = typer.Typer(help="Export SAM2 and the VLM to ONNX, and ONNX to TensorRT.", no_args_is_help=True)

_COMMAND_MODULES: list[str] = ["vigil360.export.vlm", "vigil360.export.sam2_cli", "vigil360.export.tensorrt"]


def register(app: typer.Typer) -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name)
    app.add_typer(export_app, name="export")
