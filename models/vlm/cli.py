"""`vigil360 models vlm-*`: build a random-weights test model, and try the grounder / captioner by hand.

`--debug-dir` writes exactly what the model saw (views, highlighted crops) as PNGs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from vigil360.errors import UserError
from vigil360.models.cli import models_app


def _read_rgb(path: Path):
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path):
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UserError(f"{path}: not a readable mask image")
    return mask > 127


def _vlm_config(settings: Path | None, backend: str | None, model_dir: Path | None, onnx_dir: Path | None,
                base_url: str | None, debug_dir: Path | None):
    from vigil360.config import Settings

    config = (Settings.from_file(settings) if settings else Settings()).vlm
    overrides = {key: value for key, value in {"backend": backend, "model_dir": model_dir and str(model_dir),
                                               "onnx_dir": onnx_dir and str(onnx_dir)}.items() if value}
    for role in ("grounder", "captioner"):
        section = getattr(config, role).model_copy(update=overrides)
        if base_url:
            section = section.model_copy(update={"http": section.http.model_copy(update={"base_url": base_url})})
        setattr(config, role, section)
    if debug_dir:
        config.debug_dir = str(debug_dir)
    return config


_SETTINGS = typer.Option(None, "--settings", help="settings JSON (its `vlm` section is used)")
_BACKEND = typer.Option(None, "--backend", help="override: transformers | onnx | http")
_MODEL_DIR = typer.Option(None, "--model-dir", help="override: model folder (transformers backend)")
_ONNX_DIR = typer.Option(None, "--onnx-dir", help="override: exported folder (onnx backend)")
_BASE_URL = typer.Option(None, "--base-url", help="override: OpenAI-compatible endpoint (http backend)")
_DEBUG_DIR = typer.Option(None, "--debug-dir", help="write the images sent to the model here")


@models_app.command("vlm-random-init")
def random_init_command(
    out: Path = typer.Option(..., "--out", help="folder to write"),
    architecture: str = typer.Option("idefics3-tiny", help="idefics3-tiny | smolvlm-256m | qwen2_5_vl-tiny | "
                                     "qwen3_vl-tiny | qwen2_5_vl-0.6b | qwen3_vl-0.6b"),
    seed: int = typer.Option(0),
) -> None:
    """Write a RANDOM-WEIGHTS VLM folder of a real architecture (tests, export and latency checks)."""
    from vigil360.models.vlm.qwen.random_init import ARCHITECTURES as QWEN
    from vigil360.models.vlm.qwen.random_init import write_random_qwen
    from vigil360.models.vlm.random_init import write_random_vlm

    write = write_random_qwen if architecture in QWEN else write_random_vlm
    typer.echo(f"wrote {write(out, architecture, seed)} (random weights: its answers are meaningless)")


@models_app.command("vlm-ground")
def ground_command(
    images: list[Path] = typer.Argument(..., help="perspective views (PNG/JPEG)"),
    context: str = typer.Option("", "--context", help="scene context (e.g. the video-level caption)"),
    settings: Path | None = _SETTINGS, backend: str | None = _BACKEND, model_dir: Path | None = _MODEL_DIR,
    onnx_dir: Path | None = _ONNX_DIR, base_url: str | None = _BASE_URL, debug_dir: Path | None = _DEBUG_DIR,
) -> None:
    """Run the grounder on views and print its entities (boxes in view pixels) and rejections as JSON."""
    from vigil360.models.vlm.factory import build_grounder

    grounder = build_grounder(_vlm_config(settings, backend, model_dir, onnx_dir, base_url, debug_dir))
    result = grounder.ground([_read_rgb(path) for path in images], context)
    typer.echo(json.dumps({"ok": result.ok, "entities": [dataclasses.asdict(e) for e in result.entities],
                           "rejected": result.rejected, "repairs": result.repairs, "raw_text": result.raw_text},
                          indent=2))


@models_app.command("vlm-describe")
def describe_command(
    frames: list[Path] = typer.Option(..., "--frame", help="view frames of one instance, in order"),
    masks: list[Path] = typer.Option(..., "--mask", help="its view-space masks (white = instance), one per frame"),
    context: str = typer.Option("", "--context", help="video-level reference caption"),
    settings: Path | None = _SETTINGS, backend: str | None = _BACKEND, model_dir: Path | None = _MODEL_DIR,
    onnx_dir: Path | None = _ONNX_DIR, base_url: str | None = _BASE_URL, debug_dir: Path | None = _DEBUG_DIR,
) -> None:
    """Highlight one instance (contour, rest dimmed, centred crop) and print its {appearance, motion}."""
    from vigil360.models.vlm.factory import build_captioner
    from vigil360.models.vlm.highlight import highlighted_clip

    config = _vlm_config(settings, backend, model_dir, onnx_dir, base_url, debug_dir)
    clip = highlighted_clip([_read_rgb(p) for p in frames], [_read_mask(p) for p in masks], size=config.clip_size,
                            dim=config.dim)
    result = build_captioner(config).describe(clip, context)
    typer.echo(json.dumps({"ok": result.ok, "caption": result.caption.model_dump(), "reason": result.reason,
                           "repairs": result.repairs, "raw_text": result.raw_text}, indent=2))
