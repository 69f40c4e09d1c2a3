"""Synthetic clips on disk: `<id>.mp4`, `<id>.gt.json` (schema record), `<id>.scenario.json.gz`.

A clip is complete when its `.gt.json` exists: it is written last, and every file is written
under a temporary name first, so an interrupted suite can simply be run again.
"""

from __future__ import annotations

import gzip
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

from vigil360.bench.synthetic.render import render_to
from vigil360.bench.synthetic.spec import (
    SCENARIO_KINDS,
    WALKING_KINDS,
    ScenarioKind,
    ScenarioSpec,
    ScenarioTruth,
)
from vigil360.bench.synthetic.wearer import WearerMode
from vigil360.records import RecordError, describe_validation_error, write_video_json

SCENARIO_SUFFIX = ".scenario.json.gz"


@dataclass(frozen=True)
class ClipFiles:
    video: Path
    truth: Path
    scenario: Path


def write_clip(spec: ScenarioSpec, out_dir: str | Path) -> ClipFiles:
    """Write `<id>.mp4`, `<id>.scenario.json.gz` and, last, `<id>.gt.json` (its presence means complete).

    Encoding runs in a second thread (OpenCV releases the GIL), overlapping rendering.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ClipFiles(
        out / f"{spec.video_id}.mp4",
        out / f"{spec.video_id}.gt.json",
        out / f"{spec.video_id}{SCENARIO_SUFFIX}",
    )
    partial = out / f".{spec.video_id}.partial.mp4"
    writer = cv2.VideoWriter(
        str(partial), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height)
    )
    if not writer.isOpened():
        raise RuntimeError(f"{partial}: OpenCV could not open an mp4v video writer")
    frames: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []

    def encode() -> None:
        # Keeps draining after a failure so the renderer never blocks on a full queue.
        while (image := frames.get()) is not None:
            if not failure:
                try:
                    writer.write(image)
                except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                    failure.append(error)

    thread = threading.Thread(target=encode, name=f"encode-{spec.video_id}", daemon=True)
    thread.start()
    try:
        record, scenario = render_to(spec, frames.put)
    except BaseException:
        failure.append(RuntimeError("rendering failed"))
        raise
    finally:
        frames.put(None)
        thread.join()
        writer.release()
        if failure:
            partial.unlink(missing_ok=True)
    if failure:
        raise failure[0]
    os.replace(partial, files.video)
    write_scenario(files.scenario, scenario)
    write_video_json(files.truth, record)
    return files


def write_scenario(path: str | Path, scenario: ScenarioTruth) -> None:
    """Gzipped JSON: the sidecar holds every actor's masks, and a `.json` suffix would make
    `vigil360.records.iter_records` take it for a ground-truth record."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(gzip.compress(scenario.model_dump_json(exclude_none=True).encode(), mtime=0))
    os.replace(partial, path)


def read_scenario(path: str | Path) -> ScenarioTruth:
    path = Path(path)
    try:
        return ScenarioTruth.model_validate_json(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such scenario file") from None
    except (OSError, EOFError) as error:
        raise RecordError(f"{path}: not a gzipped scenario file ({error})") from None
    except ValidationError as error:
        raise RecordError(describe_validation_error(error, str(path))) from None


def find_clips(folder: str | Path) -> list[ClipFiles]:
    """The complete clips in `folder` (those whose `.gt.json` exists), sorted by video id."""
    folder = Path(folder)
    clips = []
    for truth in sorted(folder.glob("*.gt.json")):
        video_id = truth.name[: -len(".gt.json")]
        clips.append(ClipFiles(folder / f"{video_id}.mp4", truth, folder / f"{video_id}{SCENARIO_SUFFIX}"))
    return clips


def suite_specs(
    n: int,
    seed: int = 0,
    kinds: tuple[ScenarioKind, ...] | None = None,
    max_turning_deg_s: float = 20.0,
    width: int = 1920,
    height: int = 960,
    fps: float = 30.0,
    duration_s: float = 10.0,
    wearer: WearerMode | None = None,
    exposure_step: bool = False,
) -> list[ScenarioSpec]:
    """`n` specs cycling through `kinds`; approaches from behind cross the seam in the first pass
    through `kinds` (then alternate).

    `wearer` None (the original suite): every other clip has a slowly turning wearer, the rest stand.
    "standing" / "turning": every clip so. "walking" / "mixed": the walking-wearer kinds join the cycle,
    the camera's true height is drawn from 0.9-1.8 m (the tier keeps assuming its configured height, as a
    real user who never measured it would), and auto-exposure drifts and steps.
    Clip seeds are drawn from `seed`; the video ids carry them, so suites rarely share a clip.
    `exposure_step`: every clip with an approach gets a +-20 % auto-exposure step 1-2 s before the alert
    is due (drawn from a stream of its own, so the clips are otherwise the same as without it).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    walking = wearer in ("walking", "mixed")
    if kinds is None:
        kinds = SCENARIO_KINDS + WALKING_KINDS if walking else SCENARIO_KINDS
    if not kinds:
        raise ValueError("kinds is empty")
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(n):
        clip_seed = int(rng.integers(0, 2**31 - 1))
        turning = float(rng.uniform(-1, 1) * max_turning_deg_s) if index % 2 == 1 else 0.0
        if wearer == "turning" and turning == 0.0:
            turning = float(rng.choice([-1, 1]) * rng.uniform(0.25, 1) * max_turning_deg_s)
        elif wearer in ("standing", "walking", "mixed"):
            turning = 0.0
        kind = kinds[index % len(kinds)]
        across = (index // len(kinds)) % 2 == 0 if kind in ("stealing", "lookalikes") else None
        extra: dict[str, object] = {}
        if walking:
            extra = {"camera_height_m": round(float(rng.uniform(0.9, 1.8)), 3), "exposure": "auto"}
        if exposure_step:
            step_rng = np.random.default_rng([clip_seed, 2])
            extra["exposure_step_before_alert_s"] = round(float(step_rng.uniform(1.0, 2.0)), 3)
            extra["exposure_step_gain"] = float(step_rng.choice([0.8, 1.2]))
        specs.append(
            ScenarioSpec(
                kind=kind,
                seed=clip_seed,
                turning_deg_s=round(turning, 2),
                cross_seam=across,
                width=width,
                height=height,
                fps=fps,
                duration_s=duration_s,
                wearer=wearer or "standing",
                **extra,  # type: ignore[arg-type]
            )
        )
    return specs


def make_suite(n: int, seed: int, out_dir: str | Path, **suite: object) -> list[ClipFiles]:
    """Write `n` clips into `out_dir`; `suite` takes `suite_specs`' keyword arguments."""
    return [write_clip(spec, out_dir) for spec in suite_specs(n, seed, **suite)]  # type: ignore[arg-type]
