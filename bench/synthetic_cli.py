"""`vigil360 synth` (write a suite of synthetic clips) and `vigil360 bench synth` (its speed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from vigil360.bench.cli import bench_app
from vigil360.errors import UserError

if TYPE_CHECKING:
    from vigil360.bench.synthetic.spec import ScenarioKind

_SYNTH_HELP = """Render synthetic 360-degree clips with exact ground truth.

Each clip is <id>.mp4 + <id>.gt.json (schema VideoRecord) + <id>.scenario.json.gz (per-actor
physical truth, bystanders included). Clips already complete in OUT are skipped.

Examples:

  vigil360 synth --out data/synth --n 8 --seed 0

  vigil360 synth --out /tmp/s --n 3 --seed 1 --width 960 --height 480 --duration 5

  vigil360 synth --out /tmp/s --n 4 --kinds stealing,lookalikes --turning 25
"""


def _kinds(text: str) -> tuple[ScenarioKind, ...]:
    from vigil360.bench.synthetic.spec import SCENARIO_KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in SCENARIO_KINDS]
    if unknown or not kinds:
        raise UserError(
            f"--kinds: unknown kind(s) {', '.join(unknown) or '(none)'}; known: {', '.join(SCENARIO_KINDS)}"
        )
    return cast("tuple[ScenarioKind, ...]", kinds)


def synth(
    out: Path = typer.Option(..., "--out", help="folder for the clips and their ground truth"),
    n: int = typer.Option(8, "--n", min=1, help="number of clips"),
    seed: int = typer.Option(0, "--seed", min=0, help="suite seed (each clip's seed is drawn from it)"),
    width: int = typer.Option(1920, "--width", help="equirectangular width"),
    height: int = typer.Option(960, "--height", help="equirectangular height (width / 2)"),
    fps: float = typer.Option(30.0, "--fps"),
    duration: float = typer.Option(10.0, "--duration", help="seconds per clip"),
    kinds: str = typer.Option(
        "stealing,collide,traffic,throw,bystander,lookalikes",
        "--kinds",
        help="comma-separated scenario kinds, cycled",
    ),
    turning: float = typer.Option(20.0, "--turning", help="max wearer yaw rate (deg/s) on turning clips"),
    overwrite: bool = typer.Option(False, "--overwrite", help="re-render clips that are already complete"),
) -> None:
    from pydantic import ValidationError
    from tqdm import tqdm

    from vigil360.bench.synthetic.suite import suite_specs, write_clip

    try:
        specs = suite_specs(
            n,
            seed,
            kinds=_kinds(kinds),
            max_turning_deg_s=turning,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration,
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in error.errors())
        raise UserError(f"invalid clip settings: {problems}") from None
    written = 0
    for spec in tqdm(specs, desc="synth", unit="clip"):
        if (
            not overwrite
            and (out / f"{spec.video_id}.gt.json").exists()
            and (out / f"{spec.video_id}.mp4").exists()
        ):
            continue
        write_clip(spec, out)
        written += 1
    typer.echo(f"{written} clip(s) written, {len(specs) - written} already complete, in {out}")


@bench_app.command("synth")
def bench_synth(
    repeats: int = typer.Option(3, "--repeats", min=1),
    width: int = typer.Option(1920, "--width"),
    height: int = typer.Option(960, "--height"),
    duration: float = typer.Option(10.0, "--duration"),
    kind: str = typer.Option("stealing", "--kind"),
    encode: bool = typer.Option(True, "--encode/--no-encode", help="include mp4 encoding and JSON writing"),
) -> None:
    """Time rendering one synthetic clip (median of repeats).

    Example: vigil360 bench synth --repeats 3 --width 1920 --height 960 --duration 10
    """
    from vigil360.bench.synthetic.benchmark import time_synthesis

    timing = time_synthesis(
        repeats=repeats, width=width, height=height, duration_s=duration, kind=_kinds(kind)[0], encode=encode
    )
    typer.echo(timing.summary())


def register(app: typer.Typer) -> None:
    app.command("synth", help=_SYNTH_HELP)(synth)
