"""The `vigil360` command. Each area keeps its commands in its own module; this file wires them.

Heavy imports (torch, onnxruntime, cv2) happen inside commands, so `vigil360 --help` is instant.
"""

from __future__ import annotations

import gc
import sys

import typer

app = typer.Typer(
    name="vigil360",
    help="Grounded, spoken explanations of anomalies around a 360-degree camera wearer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_DEBUG = False


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show full tracebacks on errors")) -> None:
    global _DEBUG
    _DEBUG = debug


def _register() -> None:
    from vigil360.bench.cli import register as register_bench
    from vigil360.edge.cli import register as register_edge
    from vigil360.export.cli import register as register_export
    from vigil360.models.cli import register as register_models

    register_edge(app)
    # `vigil360 run` with no SOURCE runs the demo scenario (rendered by bench, so wired here).
    from vigil360.demo import install as install_demo

    install_demo()
    register_export(app)
    register_models(app)
    register_bench(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors are click's; any other failure is one line and exit 1 (--debug: traceback)."""
    _register()
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        app(args=args, prog_name="vigil360")
    except Exception as error:  # the one place that turns a failure into a message for a person
        if _DEBUG or "--debug" in args:
            raise
        print(f"vigil360: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if argv is None:
            # The process ends here, its outputs written and closed. Freezing the heap spares the
            # interpreter's final garbage-collection passes over the model libraries' millions of
            # objects (torch, transformers, onnxruntime): 5 s -> 1 s of exit on a busy 2-core machine.
            gc.freeze()


if __name__ == "__main__":
    main()
