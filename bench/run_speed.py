"""`vigil360 bench run-speed`: videos per minute of `bench run` for 1, 2, ... Ray workers (and the
local engine as the reference), on the same videos, in the same process, in offline mode.

Each configuration starts from an empty output folder, so every video runs; the figures include
each worker's model load (once per worker), which is what a real job pays too.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import typer

from vigil360.bench.cli import bench_app
from vigil360.bench.latency import machine_name


@bench_app.command("run-speed")
def run_speed(
    data: Path = typer.Option(..., "--data", help="folder of videos (as for bench run)"),
    sam2: str | None = typer.Option(None, "--sam2", help="exported SAM2 folder"),
    vlm: str | None = typer.Option(None, "--vlm", help="VLM folder or server URL"),
    workers: str = typer.Option("1,2", "--workers", help="comma-separated Ray worker counts to time"),
    threads: int = typer.Option(1, "--threads", min=1, help="model threads per worker"),
    local: bool = typer.Option(True, "--local/--no-local", help="also time the local engine (reference)"),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1),
) -> None:
    """Videos per minute for the local engine and for N Ray workers (offline mode, every video run)."""
    from vigil360.bench.engines.ray_engine import connect
    from vigil360.bench.engines.runner import SystemSpec
    from vigil360.bench.system_run import ClusterOptions, run_system
    from vigil360.errors import UserError

    try:
        counts = [int(n) for n in workers.split(",") if n.strip()]
    except ValueError:
        raise UserError(f"--workers {workers!r}: give worker counts like 1,2") from None
    spec = SystemSpec(sam2=str(Path(sam2).resolve()) if sam2 else None, vlm=vlm, threads=threads,
                      max_frames=max_frames)
    plans = ([("local", 1)] if local else []) + [("ray", n) for n in counts]
    if counts:
        ray = connect(None)
        typer.echo(f"ray {ray.__version__}: {ray.cluster_resources().get('CPU', 0):g} CPUs")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vigil360-run-speed-") as scratch:
        for engine, count in plans:
            out = Path(scratch) / f"{engine}-{count}"
            outcome = run_system(data, out, spec, engine=engine, cluster=ClusterOptions(workers=count),
                                 progress=False)
            done = [r for r in outcome.ran if r.error is None]
            per_video = statistics.median(r.seconds for r in done) if done else float("nan")
            rows.append((engine, count, len(done), outcome.seconds, 60 * len(done) / outcome.seconds, per_video,
                         sorted({r.model_loads for r in done})))
    typer.echo(f"\nbench run speed, offline mode (synchronous model stages), {machine_name()}, "
               f"{threads} model thread(s) per worker; 1-min load average {load_before:.1f} before, "
               f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f} after")
    typer.echo("| engine | workers | videos | wall s | videos/min | per video s (median) | model loads per worker |")
    typer.echo("|---|---|---|---|---|---|---|")
    for engine, count, videos, wall, rate, per_video, loads in rows:
        typer.echo(f"| {engine} | {count} | {videos} | {wall:.1f} | {rate:.2f} | {per_video:.2f} | {loads} |")
