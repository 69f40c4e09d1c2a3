"""Shared fixtures. Synthetic 360-degree clips with exact ground truth (vigil360.bench.synthetic)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vigil360.bench.synthetic import Clip, ClipFiles, ScenarioSpec, render, write_clip

# Small enough that a test session renders several clips in seconds; 2:1 as equirect demands.
SMALL = {"width": 480, "height": 240, "fps": 15.0, "duration_s": 3.0}


@pytest.fixture(scope="session")
def synthetic_clip_factory() -> Callable[..., Clip]:
    """Render (and cache for the session) a small in-memory clip from ScenarioSpec fields.

    Defaults: 480x240, 15 fps, 3 s; override any `ScenarioSpec` field, e.g.
    `synthetic_clip_factory(kind="collide", seed=4, turning_deg_s=20)`. Returns a `Clip`:
    `clip.frames` (N, H, W, 3) uint8 BGR, `clip.truth` (schema VideoRecord, kind ground_truth),
    `clip.scenario` (ScenarioTruth: every actor's per-frame yaw, ground distance, masks, and
    whether it is a harmless distractor). Clips are shared: do not modify them in place.
    """
    cache: dict[tuple, Clip] = {}

    def make(**fields: object) -> Clip:
        merged = {**SMALL, **fields}
        key = tuple(sorted((k, repr(v)) for k, v in merged.items()))
        if key not in cache:
            cache[key] = render(ScenarioSpec(**merged))  # type: ignore[arg-type]
        return cache[key]

    return make


@pytest.fixture(scope="session")
def synthetic_clip(synthetic_clip_factory: Callable[..., Clip]) -> Clip:
    """A 3 s 480x240 'stealing' clip: a person walks up from behind across the seam, reaches
    toward the wearer and leaves; one harmless bystander passes at >= 3 m. Ground truth: one
    entity, 'perpetrator', and one Stealing interval."""
    return synthetic_clip_factory(kind="stealing", seed=7, cross_seam=True, bystanders=1)


@pytest.fixture(scope="session")
def synthetic_clip_files(tmp_path_factory: pytest.TempPathFactory) -> ClipFiles:
    """The same scene as `synthetic_clip` written to disk: `.video` (mp4), `.truth` (.gt.json),
    `.scenario` (.scenario.json.gz, read with `vigil360.bench.synthetic.read_scenario`)."""
    out: Path = tmp_path_factory.mktemp("synthetic")
    spec = ScenarioSpec(kind="stealing", seed=7, cross_seam=True, bystanders=1, **SMALL)  # type: ignore[arg-type]
    return write_clip(spec, out)
