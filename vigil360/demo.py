"""The embedded default scenario of `vigil360 run` with no argument.

It joins two areas - a clip rendered by the synthetic generator (`vigil360.bench`) fed to the
loop's run command (`vigil360.edge`) - and `edge` must never import `bench`; so it lives in
the root package, which may import both, and `install()` hands the provider to the run
command when the CLI starts.

The scenario is VIEW360-like: a theft attempt from behind, the thief crossing the seam
directly behind the wearer, with a harmless passer-by. It is rendered once into the user's
cache folder (`$XDG_CACHE_HOME/vigil360/demo`), then reused.
"""

from __future__ import annotations

import os
from pathlib import Path

# 960x480 keeps the first run's rendering to seconds; the loop itself is benchmarked at 1920x960.
DEMO_SPEC: dict[str, object] = {
    "kind": "stealing", "seed": 7, "cross_seam": True, "bystanders": 1,
    "width": 960, "height": 480, "fps": 30.0, "duration_s": 10.0,
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil360" / "demo"


def default_scenario():
    """Render (once) and return the default scenario as the run command's `DefaultSource`."""
    from vigil360.bench.synthetic import ScenarioSpec, find_clips, write_clip
    from vigil360.edge.run_cli import DefaultSource

    spec = ScenarioSpec(**DEMO_SPEC)  # type: ignore[arg-type]
    folder = cache_dir()
    found = [clip for clip in find_clips(folder) if clip.video.name == f"{spec.video_id}.mp4" and clip.video.exists()]
    if found:
        files = found[0]
    else:
        print(f"vigil360: rendering the default scenario into {folder} (once)", flush=True)
        files = write_clip(spec, folder)
    description = (f"synthetic theft from behind across the seam, {spec.width}x{spec.height}, "
                   f"{spec.duration_s:g} s ({files.video})")
    return DefaultSource(path=files.video, description=description, video_id=spec.video_id, truth=files.truth)


def install() -> None:
    from vigil360.edge.run_cli import set_default_source

    set_default_source(default_scenario)
