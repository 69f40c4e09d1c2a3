"""Frames of a real video for model tests: OpenCV's `vtest.avi` (pedestrians filmed from a raised
static camera, 768 x 576, 10 fps), shipped by Debian's `opencv-doc` package.

The package is fetched once with `apt-get download` and unpacked with `dpkg -x` into a cache outside
the repository (nothing fetched is committed); a machine without apt or the network skips the test
that needs it, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

PACKAGE = "opencv-doc"
VIDEO = Path("usr/share/doc/opencv-doc/examples/data/vtest.avi")
CACHE = Path(os.environ.get("VIGIL360_DEBIAN_CACHE", Path.home() / ".cache" / "vigil360" / "debian"))


def vtest_path() -> Path:
    """The cached vtest.avi, fetching it first if needed; skips the calling test when it cannot."""
    target = CACHE / PACKAGE / VIDEO
    if target.is_file():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip(f"needs {PACKAGE}'s vtest.avi: apt-get/dpkg are not available to fetch it")
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=CACHE, check=True, capture_output=True, timeout=600)
        package = max(CACHE.glob(f"{PACKAGE}_*.deb"), key=lambda p: p.stat().st_mtime)
        subprocess.run(["dpkg", "-x", str(package), str(CACHE / PACKAGE)], check=True, capture_output=True,
                       timeout=600)
    except (subprocess.SubprocessError, ValueError) as error:
        pytest.skip(f"could not fetch {PACKAGE} (for vtest.avi) with apt-get download: {error}")
    if not target.is_file():
        pytest.skip(f"{PACKAGE} was unpacked but holds no {VIDEO}")
    return target


def vtest_frames(count: int, step: int = 1) -> list[np.ndarray]:
    """`count` RGB frames of vtest.avi, every `step`-th from the start."""
    import cv2

    capture = cv2.VideoCapture(str(vtest_path()))
    frames = []
    index = 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(np.ascontiguousarray(frame[..., ::-1]))
        index += 1
    capture.release()
    if len(frames) < count:
        pytest.skip(f"vtest.avi gave {len(frames)} frames, the test needs {count} (OpenCV without a decoder?)")
    return frames
