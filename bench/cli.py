"""`vigil360 bench ...` (scoring, latency, reflex/loop benchmarks) and `vigil360 synth`.

Each benchmark module defines its commands with `@bench_app.command(...)`; importing the
module in `register` is what wires it.
"""

from __future__ import annotations

import importlib

import typer

bench_app = typer.Typer(help="Score predictions, profile latency, run benchmarks.", no_args_is_help=True)

# Modules whose import adds commands to `bench_app` (or, for top-level ones, to the root app
# through their own `register(app)`).
_COMMAND_MODULES: list[str] = [
    "vigil360.bench.synthetic_cli",
    "vigil360.bench.score_cli",
    "vigil360.bench.reflex_bench",
    "vigil360.bench.alerts_bench",
    "vigil360.bench.loop_bench",
    "vigil360.bench.serve_load",
    "vigil360.bench.latency",
    "vigil360.bench.run_speed",
    "vigil360.bench.gpu_check",
]


def register(app: typer.Typer) -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(app)
    app.add_typer(bench_app, name="bench")
