"""Real imagery the project may use but never commits, fetched from Debian on demand.

- `blender-data`: 8 CC0 equirectangular HDRI photographs (city, courtyard, forest, interior,
  night, studio, sunrise, sunset), 1024 x 512 EXR. Limits: low resolution (0.35 deg per pixel)
  and, being photographs at infinity, no parallax when the camera translates.
- `opencv-doc`: `examples/data/vtest.avi`, real pedestrians, 768 x 576 at 10 fps from a raised
  static camera (a perspective view, not a 360-degree one).

`apt-get download` + `dpkg -x` into a cache folder ($VIGIL360_CACHE, default ~/.cache/vigil360);
nothing is installed. Without apt (or without network) the error says so, and callers skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

HDRI_NAMES: tuple[str, ...] = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")
_HDRI_DIR = "usr/share/blender/datafiles/studiolights/world"
_VTEST = "usr/share/doc/opencv-doc/examples/data/vtest.avi"


class RealImageryUnavailable(RuntimeError):
    """The Debian package could not be fetched here (no apt-get, no network)."""


def cache_dir() -> Path:
    return Path(os.environ.get("VIGIL360_CACHE", Path.home() / ".cache" / "vigil360")) / "debian"


def debian_file(package: str, member: str) -> Path:
    """Path of `member` inside Debian `package`, downloading and unpacking it into the cache once."""
    root = cache_dir() / package
    path = root / member
    if path.exists():
        return path
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise RealImageryUnavailable(f"{package}: apt-get/dpkg not available to fetch {member}")
    work = cache_dir()
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RealImageryUnavailable(f"apt-get download {package} failed: {done.stderr.strip()[:200]}")
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise RealImageryUnavailable(f"apt-get download {package} produced no .deb in {work}")
    done = subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not path.exists():
        raise RealImageryUnavailable(f"dpkg -x {debs[-1].name}: {member} not found ({done.stderr.strip()[:200]})")
    return path


def hdri_path(name: str) -> Path:
    if name not in HDRI_NAMES:
        raise ValueError(f"unknown HDRI {name!r}; one of {HDRI_NAMES}")
    return debian_file("blender-data", f"{_HDRI_DIR}/{name}.exr")


def load_hdri(name: str, width: int | None = None) -> np.ndarray:
    """The photograph as uint8 BGR (Reinhard-tone-mapped, gamma 2.2), optionally resized to width x width/2.

    Read with the OpenEXR wheel: OpenCV's EXR reader is off unless OPENCV_IO_ENABLE_OPENEXR was set
    before cv2 loaded, and this project's OpenCV 5 build has none at all."""
    import cv2

    try:
        import OpenEXR
    except ImportError as error:
        raise RealImageryUnavailable("reading EXR needs the OpenEXR wheel: pip install 'vigil360[bench]'") from error
    path = hdri_path(name)
    with OpenEXR.File(str(path)) as exr:
        channels = exr.channels()
        rgb = channels["RGB"].pixels if "RGB" in channels else np.stack(
            [channels[c].pixels for c in ("R", "G", "B")], axis=-1)
    radiance = np.maximum(np.asarray(rgb, dtype=np.float32)[..., ::-1], 0)  # RGB -> BGR
    scaled = radiance / (np.median(radiance) * 4 + 1e-6)
    image = np.clip(255 * (scaled / (1 + scaled)) ** (1 / 2.2), 0, 255).astype(np.uint8)
    if width is not None:
        image = cv2.resize(image, (width, width // 2), interpolation=cv2.INTER_AREA)
    return image


def vtest_path() -> Path:
    return debian_file("opencv-doc", _VTEST)
