"""The Ray engine: videos are the unit of work; each worker is a Ray actor holding one
`VideoRunner` (SAM2 and the VLM loaded once) and gets the next video as soon as it is free.

Predictions come back to the driver, which writes them (`PredictionStore`), so workers need
only read access to the videos and models (a shared filesystem, at the same paths) and the
output folder lives where the driver runs. A worker lost mid-video is restarted and the video
retried; a killed driver loses only the videos in flight. `ray` is imported here only: the
wearable's `edge` and `models` never depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vigil360.bench.engines.runner import SystemSpec, VideoRunner
from vigil360.bench.engines.store import VideoResult
from vigil360.errors import UserError


class VideoWorker:
    """The actor: `VideoRunner` behind a method Ray can call."""

    def __init__(self, spec_json: str) -> None:
        self.runner = VideoRunner(SystemSpec.model_validate_json(spec_json))

    def run(self, path: str) -> tuple[VideoResult, str | None]:
        return self.runner.run(path)


def connect(address: str | None):
    """The Ray module, connected: to the cluster of this process if there is one, else `address`
    (`auto`: the cluster on this machine; `ray://host:port`: a remote one), else a new local one."""
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'vigil360[cluster]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def worker_count(ray, workers: int | None, cpus_per_worker: float, gpus_per_worker: float) -> int:
    if workers is not None:
        return workers
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // cpus_per_worker))


def run_ray(videos: list[Path], spec: SystemSpec, *, address: str | None = None, workers: int | None = None,
            cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0) -> Iterator[tuple[VideoResult, str | None]]:
    if not videos:
        return
    ray = connect(address)
    from ray.util import ActorPool

    count = min(len(videos), worker_count(ray, workers, cpus_per_worker, gpus_per_worker))
    actor = ray.remote(VideoWorker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                            max_restarts=2, max_task_retries=2)
    spec_json = spec.model_dump_json()
    actors = [actor.remote(spec_json) for _ in range(count)]
    try:
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda worker, path: worker.run.remote(str(path.resolve())), videos)
    finally:
        for handle in actors:
            ray.kill(handle)
