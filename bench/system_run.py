"""`vigil360 bench run`: run the vigil360 loop over a dataset folder, then score it.

The folder holds videos (`<video_id>.mp4`) and, unless `--gt` points elsewhere, their ground
truth (`<video_id>.gt.json`, as `vigil360 synth` writes). Each video's predictions go to
`OUT/predictions/<video_id>.jsonl`, written under a temporary name and renamed when the video
is done, so an interrupted run redoes only the videos it had not finished; scoring is resumable too.

The loop runs in offline mode: every frame is processed and waits for the model results it
scheduled, so the predictions do not depend on the machine's speed or on the engine (one
process, or Ray actors over a cluster). `OUT/run_log.jsonl` records every video's worker, model
loads, frames and time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import typer

from vigil360.bench.engines.runner import SystemSpec
from vigil360.bench.engines.store import PredictionStore, VideoResult, dataset_videos
from vigil360.errors import UserError

ENGINES = ("local", "ray")


@dataclass
class ClusterOptions:
    address: str | None = None  # None: a new local Ray instance; "auto"; "ray://host:port"
    workers: int | None = None  # None: as many as the cluster's CPUs (or GPUs) allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass
class RunOutcome:
    predictions: Path
    ran: list[VideoResult] = field(default_factory=list)  # this invocation's videos, in completion order
    skipped: list[str] = field(default_factory=list)  # already done by an earlier run
    seconds: float = 0.0

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.ran if r.error is not None]


def run_system(data: Path, out: Path, spec: SystemSpec, *, engine: str = "local",
               cluster: ClusterOptions | None = None, progress: bool = True) -> RunOutcome:
    """Predictions for every video of `data` not done yet; each is committed as it finishes."""
    from tqdm import tqdm

    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    cluster = cluster or ClusterOptions()
    if engine == "local" and (cluster.workers or 1) > 1:
        raise UserError("--workers > 1 needs --engine ray (the local engine is one process)")
    store = PredictionStore(out)
    videos = dataset_videos(data)
    todo = store.pending(videos)
    outcome = RunOutcome(store.folder, skipped=[p.stem for p in videos if p not in todo])
    job = uuid.uuid4().hex[:12]
    typer.echo(f"bench run ({engine} engine, offline mode: synchronous model stages): {len(todo)} of {len(videos)} "
               f"video(s) to run, {len(outcome.skipped)} already done", err=True)
    start = time.perf_counter()
    if engine == "local":
        from vigil360.bench.engines.local import run_local

        results = run_local(todo, spec)
    else:
        from vigil360.bench.engines.ray_engine import run_ray

        results = run_ray(todo, spec, address=cluster.address, workers=cluster.workers,
                          cpus_per_worker=cluster.cpus_per_worker, gpus_per_worker=cluster.gpus_per_worker)
    with tqdm(total=len(todo), desc=f"vigil360 loop ({engine})", unit="video", disable=not progress) as bar:
        for result, predictions in results:
            result.job, result.engine = job, engine
            store.commit(result, predictions)
            outcome.ran.append(result)
            bar.update()
            status = f"failed: {result.error}" if result.error else \
                f"{result.frames} frames, {result.alerts} alerts in {result.seconds:.1f} s"
            # One line per video on stdout: the progress a log (or a test) can follow.
            typer.echo(f"video {result.video_id} done ({len(outcome.ran)}/{len(todo)}) on {result.worker}: {status}")
    outcome.seconds = time.perf_counter() - start
    store.remove_leftovers()
    return outcome
