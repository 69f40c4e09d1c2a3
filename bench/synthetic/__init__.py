"""Synthetic 360-degree scenarios with exact ground truth, for tests, the demo and smoke benchmarks.

spec = ScenarioSpec(kind="stealing", seed=3, width=960, height=480, duration_s=4)
clip = render(spec)               # frames + truth (VideoRecord) + scenario (ScenarioTruth)
files = write_clip(spec, "out/")  # <id>.mp4, <id>.gt.json, <id>.scenario.json.gz
"""

from vigil360.bench.synthetic.render import Clip, ground_truth, iter_frames, render, render_to
from vigil360.bench.synthetic.spec import (
    SCENARIO_KINDS,
    WALKING_KINDS,
    ActorTruth,
    ScenarioKind,
    ScenarioSpec,
    ScenarioTruth,
)
from vigil360.bench.synthetic.suite import (
    ClipFiles,
    find_clips,
    make_suite,
    read_scenario,
    suite_specs,
    write_clip,
    write_scenario,
)

__all__ = [
    "SCENARIO_KINDS",
    "WALKING_KINDS",
    "ActorTruth",
    "Clip",
    "ClipFiles",
    "ScenarioKind",
    "ScenarioSpec",
    "ScenarioTruth",
    "find_clips",
    "ground_truth",
    "iter_frames",
    "make_suite",
    "read_scenario",
    "render",
    "render_to",
    "suite_specs",
    "write_clip",
    "write_scenario",
]
