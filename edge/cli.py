"""`vigil360 run` and `vigil360 serve`: the on-device loop and its server."""

from __future__ import annotations

import importlib

import typer

_COMMAND_MODULES: list[str] = ["vigil360.edge.run_cli", "vigil360.edge.server.serve_cli"]


def register(app: typer.Typer) -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)
