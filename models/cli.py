"""`vigil360 models ...`: fetch and verify model checkpoints."""

from __future__ import annotations

import importlib

import typer

models_app = typer.Typer(help="Fetch, cache and verify model checkpoints.", no_args_is_help=True)

_COMMAND_MODULES: list[str] = ["vigil360.models.checkpoints_cli", "vigil360.models.vlm.cli"]


def register(app: typer.Typer) -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name)
    app.add_typer(models_app, name="models")
