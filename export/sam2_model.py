"""Building a SAM2-family model and reading what its runtime needs from it.

Models are built with the sam2 package's Hydra configs; the family is a row of `MODELS`, not a
hard-coded name, so EdgeTAM-style checkpoints only need a row (or `--config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil360.errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    family: str
    config: str  # Hydra config name inside the sam2 package (or a path for out-of-tree families)


MODELS: dict[str, ModelSpec] = {
    "sam2.1_hiera_tiny": ModelSpec("sam2.1", "configs/sam2.1/sam2.1_hiera_t.yaml"),
    "sam2.1_hiera_small": ModelSpec("sam2.1", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    "sam2.1_hiera_base_plus": ModelSpec("sam2.1", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
    "sam2.1_hiera_large": ModelSpec("sam2.1", "configs/sam2.1/sam2.1_hiera_l.yaml"),
    "sam2_hiera_tiny": ModelSpec("sam2", "configs/sam2/sam2_hiera_t.yaml"),
    "sam2_hiera_small": ModelSpec("sam2", "configs/sam2/sam2_hiera_s.yaml"),
    "sam2_hiera_base_plus": ModelSpec("sam2", "configs/sam2/sam2_hiera_b+.yaml"),
    "sam2_hiera_large": ModelSpec("sam2", "configs/sam2/sam2_hiera_l.yaml"),
}


# Hiera pools the image four times (stride 32) and SAM2 reads stride-16 features; the mask
# decoder upsamples 4x: sizes must be multiples of 32 (tested: 256, 512, 1024).
IMAGE_SIZE_MULTIPLE = 32


def check_image_size(image_size: int) -> None:
    if image_size < 64 or image_size % IMAGE_SIZE_MULTIPLE:
        raise UserError(
            f"--image-size {image_size}: SAM2 needs a multiple of {IMAGE_SIZE_MULTIPLE}, at least 64 "
            "(e.g. 1024, 768, 512, 256)"
        )


def build_model(
    model: str,
    image_size: int = 1024,
    checkpoint: str | Path | None = None,
    seed: int | None = None,
    config: str | None = None,
):
    """A SAM2VideoPredictor (CPU, eval) with the official video post-processing settings.

    Exactly one of `checkpoint` / `seed` picks the weights: a verified checkpoint, or random
    init (the real architecture with untrained weights, for tests and latency work).
    """
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    from vigil360.models.checkpoints import load_sam2_state_dict

    if model not in MODELS and config is None:
        raise UserError(f"unknown SAM2 model {model!r}; known: {', '.join(MODELS)} (or pass --config)")
    if (checkpoint is None) == (seed is None):
        raise UserError("choose the weights: --checkpoint PATH, or --random-init --seed N")
    check_image_size(image_size)
    config_name = config or MODELS[model].config
    overrides = [f"++model.image_size={image_size}"]
    if seed is not None:
        torch.manual_seed(seed)
    try:
        sam = build_sam2_video_predictor(config_name, None, device="cpu", hydra_overrides_extra=overrides)
    except Exception as error:  # Hydra raises several unrelated types for a bad config name
        raise UserError(f"could not build {model} from config {config_name!r}: {error}") from None
    if checkpoint is not None:
        state = load_sam2_state_dict(checkpoint)
        missing, unexpected = sam.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UserError(
                f"{checkpoint}: does not fit {model} ({len(missing)} missing keys, e.g. "
                f"{list(missing)[:3]}; {len(unexpected)} unexpected, e.g. {list(unexpected)[:3]})"
            )
    return sam.eval()


def host_constants(sam) -> dict[str, np.ndarray]:
    """Parameters the host needs outside the graphs (SAM2 adds `no_mem_embed` on the first frame)."""
    return {"no_mem_embed": sam.no_mem_embed.detach().reshape(-1).numpy().astype(np.float32)}


def tracker_config(sam, config_name: str) -> dict:
    """The memory-bank and post-processing rules the runtime must follow, read from the built model."""
    decoder = sam.sam_mask_decoder
    return {
        "hydra_config": config_name,
        "num_maskmem": sam.num_maskmem,
        "max_obj_ptrs_in_encoder": sam.max_obj_ptrs_in_encoder,
        "max_cond_frames_in_attn": sam.max_cond_frames_in_attn,
        "memory_temporal_stride_for_eval": sam.memory_temporal_stride_for_eval,
        "multimask_output_in_sam": sam.multimask_output_in_sam,
        "multimask_output_for_tracking": sam.multimask_output_for_tracking,
        "multimask_min_pt_num": sam.multimask_min_pt_num,
        "multimask_max_pt_num": sam.multimask_max_pt_num,
        "use_multimask_token_for_obj_ptr": sam.use_multimask_token_for_obj_ptr,
        "dynamic_multimask_via_stability": decoder.dynamic_multimask_via_stability,
        "dynamic_multimask_stability_delta": decoder.dynamic_multimask_stability_delta,
        "dynamic_multimask_stability_thresh": decoder.dynamic_multimask_stability_thresh,
        "binarize_mask_from_pts_for_mem_enc": sam.binarize_mask_from_pts_for_mem_enc,
        "fill_hole_area": sam.fill_hole_area,
        "directly_add_no_mem_embed": sam.directly_add_no_mem_embed,
        "only_obj_ptrs_in_the_past_for_eval": sam.only_obj_ptrs_in_the_past_for_eval,
        "use_signed_tpos_enc_to_obj_ptrs": sam.use_signed_tpos_enc_to_obj_ptrs,
        "add_tpos_enc_to_obj_ptrs": sam.add_tpos_enc_to_obj_ptrs,
        "pred_obj_scores": sam.pred_obj_scores,
        "hidden_dim": sam.hidden_dim,
        "mem_dim": sam.mem_dim,
        "backbone_stride": sam.backbone_stride,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }
