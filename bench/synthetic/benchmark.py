"""How long one synthetic clip takes to make: the figure behind `vigil360 bench synth`."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass

from vigil360.bench.synthetic.render import render_to
from vigil360.bench.synthetic.spec import ScenarioKind, ScenarioSpec
from vigil360.bench.synthetic.suite import write_clip


@dataclass(frozen=True)
class SynthTiming:
    spec: ScenarioSpec  # the first repeat's; later repeats change only the seed
    encode: bool
    wall_s: list[float]
    cpu_s: list[float]  # process CPU time, all threads: wall >> cpu / cores means a busy machine

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    def summary(self) -> str:
        spec = self.spec
        per_frame = 1000.0 * self.median_s / spec.num_frames
        runs = ", ".join(f"{s:.2f}" for s in self.wall_s)
        return (
            f"synth {spec.kind} {spec.width}x{spec.height} {spec.duration_s:g} s ({spec.num_frames} frames, "
            f"{'render+mp4+truth files' if self.encode else 'render+truth in memory'}): "
            f"median {self.median_s:.2f} s per clip [{runs}], {per_frame:.1f} ms/frame, "
            f"median CPU {statistics.median(self.cpu_s):.2f} s"
        )


def time_synthesis(
    repeats: int = 3,
    width: int = 1920,
    height: int = 960,
    duration_s: float = 10.0,
    kind: ScenarioKind = "stealing",
    encode: bool = True,
    turning_deg_s: float = 15.0,
) -> SynthTiming:
    """Render `repeats` clips (seeds 0..repeats-1); with `encode`, write mp4 + truth as `synth` does."""
    wall, cpu = [], []
    specs = [
        ScenarioSpec(
            kind=kind,
            seed=seed,
            width=width,
            height=height,
            duration_s=duration_s,
            turning_deg_s=turning_deg_s,
        )
        for seed in range(repeats)
    ]
    for spec in specs:
        with tempfile.TemporaryDirectory(prefix="vigil360-synth-bench-") as tmp:
            start, cpu_start = time.perf_counter(), time.process_time()
            if encode:
                write_clip(spec, tmp)
            else:
                render_to(spec, lambda image: None)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return SynthTiming(specs[0], encode, wall, cpu)
