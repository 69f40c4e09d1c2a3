"""`vigil360 models pull NAME`: fetch an official SAM2 checkpoint into the cache, resumably, and verify it."""

from __future__ import annotations

from pathlib import Path

import typer

from vigil360.models.checkpoints import CHECKPOINTS, pull
from vigil360.models.cli import models_app


@models_app.command("pull")
def pull_command(
    name: str = typer.Argument(..., help=f"one of: {', '.join(CHECKPOINTS)}"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="default: $VIGIL360_CACHE/checkpoints"),
    sha256: str | None = typer.Option(
        None, "--sha256", help="expected sha256 (pins a file whose hash we lack)"
    ),
    url: str | None = typer.Option(None, "--url", help="download from a mirror instead of Meta's URL"),
) -> None:
    """Download (resuming a partial file), then check the hash and that it is a SAM2 checkpoint."""
    from tqdm import tqdm

    bar = tqdm(unit="B", unit_scale=True, desc=name, leave=False)

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        path = pull(name, cache_dir, sha256=sha256, url=url, progress=progress)
    finally:
        bar.close()
    from vigil360.models.checkpoints import sha256_of

    spec = CHECKPOINTS.get(name)
    how = (
        "verified against the expected hash"
        if sha256 or (spec and spec.sha256)
        else "no published hash to compare (pin one with --sha256): size and SAM2 structure checked"
    )
    typer.echo(f"{name}: {path} sha256 {sha256_of(path)}, {how}")
