"""SAM2 checkpoints: where the official files live, a local cache, resumable verified downloads.

Hash policy: a checkpoint is trusted by sha256 when we know its published hash. Meta publishes
the URLs but (as far as we could find) no sha256 for the SAM2.1 files, so `sha256` is None in
`CHECKPOINTS` and the download is checked by size (the server's Content-Length) and by opening
it as a SAM2 state dict; pass `--sha256 HEX` (from a copy you trust) to pin it. A file that fails
any check is an error, never a silent fallback.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vigil360.errors import MissingModelError, UserError

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
PARTIAL_SUFFIX = ".part"


@dataclass(frozen=True)
class CheckpointSpec:
    name: str
    url: str
    sha256: str | None  # None: no trustworthy published hash (see the module docstring)


CHECKPOINTS: dict[str, CheckpointSpec] = {
    name: CheckpointSpec(name, f"{BASE_URL}/{name}.pt", None)
    for name in ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large")
}


def default_cache_dir() -> Path:
    """`$VIGIL360_CACHE/checkpoints`, else `$XDG_CACHE_HOME/vigil360/checkpoints`, else ~/.cache/..."""
    if root := os.environ.get("VIGIL360_CACHE"):
        return Path(root) / "checkpoints"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vigil360" / "checkpoints"


def cached_checkpoint(name: str, cache_dir: str | Path | None = None) -> Path:
    """The cached file for `name`, or a MissingModelError saying how to fetch it."""
    path = Path(cache_dir or default_cache_dir()) / f"{name}.pt"
    if not path.is_file():
        raise MissingModelError(f"{name}: not in the cache ({path}); run `vigil360 models pull {name}`")
    return path


def sha256_of(path: str | Path) -> str:
    from vigil360.models.manifest import sha256_file

    return sha256_file(path)


def checkpoint_weights_label(path: str | Path) -> str:
    """What a manifest records for these weights."""
    return f"sha256:{sha256_of(path)}"


def load_sam2_state_dict(path: str | Path) -> dict:
    """The `model` state dict of a SAM2 checkpoint; anything else is a clear UserError."""
    path = Path(path)
    if not path.is_file():
        raise MissingModelError(f"{path}: checkpoint not found (fetch one with `vigil360 models pull NAME`)")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a PyTorch checkpoint (not a torch.save zip archive)")
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle/runtime errors of several kinds
        raise UserError(f"{path}: could not be read as a PyTorch checkpoint: {error}") from None
    state = content.get("model") if isinstance(content, dict) else None
    if (
        not isinstance(state, dict)
        or not any(k.startswith("image_encoder.") for k in state)
        or not any(k.startswith("memory_attention.") for k in state)
    ):
        keys = list(content)[:5] if isinstance(content, dict) else type(content).__name__
        raise UserError(
            f"{path}: not a SAM2 checkpoint (expected a 'model' dict with image_encoder.* and "
            f"memory_attention.* weights; found {keys})"
        )
    return state


def verify_checkpoint(path: str | Path, sha256: str | None, check_structure: bool = True) -> str:
    """Hash the file; compare with `sha256` when known; optionally open it as SAM2. Returns the hash."""
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256.lower():
        raise UserError(
            f"{path}: sha256 {digest} does not match the expected {sha256.lower()} "
            "(corrupt or substituted download; delete it and pull again)"
        )
    if check_structure:
        load_sam2_state_dict(path)
    return digest


def download(
    url: str,
    target: str | Path,
    *,
    chunk: int = 1 << 20,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download `url` to `target`, resuming a previous `.part` file with an HTTP Range request.

    The file appears at `target` only once complete (rename of the `.part` file), so a crash
    never leaves a truncated file under the final name.
    """
    import httpx

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 416 and have:  # nothing left to fetch: the part file is complete
                partial.replace(target)
                return target
            if response.status_code not in (200, 206):
                raise UserError(f"{url}: HTTP {response.status_code} while downloading")
            resumed = response.status_code == 206
            if not resumed:
                have = 0  # the server ignored the Range header: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(partial, "ab" if resumed else "wb") as handle:
                for block in response.iter_bytes(chunk):
                    handle.write(block)
                    have += len(block)
                    if progress is not None:
                        progress(have, total)
    except httpx.HTTPError as error:
        raise UserError(
            f"{url}: download interrupted ({error}); run the same command again to resume"
        ) from None
    if total is not None and have != total:
        raise UserError(f"{url}: got {have} of {total} bytes; run the same command again to resume")
    partial.replace(target)
    return target


def pull(
    name: str,
    cache_dir: str | Path | None = None,
    sha256: str | None = None,
    url: str | None = None,
    check_structure: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Fetch `name` into the cache (resuming), then verify it; a cached good file is not fetched again."""
    if name not in CHECKPOINTS and url is None:
        raise UserError(f"unknown checkpoint {name!r}; known: {', '.join(CHECKPOINTS)} (or give --url)")
    spec = CHECKPOINTS.get(name)
    expected = sha256 or (spec.sha256 if spec else None)
    target = Path(cache_dir or default_cache_dir()) / f"{name}.pt"
    if not target.is_file():
        download(url or spec.url, target, progress=progress)
    try:
        verify_checkpoint(target, expected, check_structure)
    except UserError:
        bad = target.with_name(target.name + ".rejected")
        target.replace(bad)
        raise
    return target


def hash_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
