"""Export-friendly views of a SAM2 model: the four graphs every deployment uses.

Each wrapper reuses the sam2 model's own sub-modules (so the weights are the checkpoint's) and
only changes what does not export: the complex-number RoPE of memory attention is rewritten with
real cos/sin tables computed once per call inside the graph, and host-side choices (which of the four masks to
keep, the memory bank) are left to the runtime. All wrappers put themselves in eval mode: a
wrapper left in training mode re-enables dropout in memory attention and breaks parity.

Tensor layouts are batch-first; B is the number of objects, h = w = image_size / 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import get_1d_sine_pe
from torch import nn


class ImageEncoder(nn.Module):
    """frame [1, 3, S, S] (normalised) -> decoder high-res features, image embedding, its position code."""

    input_names = ("image",)
    output_names = ("high_res_feat0", "high_res_feat1", "image_embed", "image_pos")

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image: torch.Tensor):
        out = self.model.forward_image(image)  # applies the decoder's conv_s0/conv_s1 to levels 0/1
        feat0, feat1, embed = out["backbone_fpn"][-3:]
        return feat0, feat1, embed, out["vision_pos_enc"][-1]


class PromptMaskDecoder(nn.Module):
    """Prompt encoder + mask decoder + object-pointer head, for all four mask tokens.

    Points are in model-input pixels (0..S), labels: 1 positive, 0 negative, 2/3 box corners,
    -1 padding. SAM2's video predictor always appends one padding point (it never passes boxes
    separately), and so does this graph. Which mask to keep (multimask argmax or the stability
    rule) is decided by the host, as SAM2 does after the decoder, so the graph returns all four.
    """

    input_names = (
        "image_embed",
        "high_res_feat0",
        "high_res_feat1",
        "point_coords",
        "point_labels",
        "mask_input",
        "has_mask_input",
    )
    output_names = ("masks", "iou", "obj_ptrs", "object_score_logits")

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(
        self,
        image_embed,
        high_res_feat0,
        high_res_feat1,
        point_coords,
        point_labels,
        mask_input,
        has_mask_input,
    ):
        model = self.model
        batch = image_embed.shape[0]
        prompt = model.sam_prompt_encoder
        sparse = prompt._embed_points(point_coords, point_labels, pad=True)
        has_mask = has_mask_input.reshape(-1, 1, 1, 1)
        dense = has_mask * prompt._embed_masks(mask_input) + (
            1.0 - has_mask
        ) * prompt.no_mask_embed.weight.reshape(1, -1, 1, 1)
        high_res = [high_res_feat0.expand(batch, -1, -1, -1), high_res_feat1.expand(batch, -1, -1, -1)]
        masks, iou, tokens, object_score_logits = model.sam_mask_decoder.predict_masks(
            image_embeddings=image_embed,
            image_pe=prompt.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=high_res,
        )
        obj_ptrs = model.obj_ptr_proj(tokens)
        if model.pred_obj_scores:
            appearing = (object_score_logits > 0).float().unsqueeze(1)  # [B, 1, 1]
            if model.soft_no_obj_ptr:
                appearing = object_score_logits.sigmoid().unsqueeze(1)
            if model.fixed_no_obj_ptr:
                obj_ptrs = appearing * obj_ptrs
            obj_ptrs = obj_ptrs + (1.0 - appearing) * model.no_obj_ptr
        return masks, iou, obj_ptrs, object_score_logits


def axial_rope_tables(dim: int, end_x: int, end_y: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of SAM2's axial RoPE angles, [end_x * end_y, dim / 2]: the real `compute_axial_cis`."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = (t % end_x).float()
    t_y = torch.div(t, end_x, rounding_mode="floor").float()
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return torch.cos(angles), torch.sin(angles)


def apply_rope_real(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs (x0, x1) by the table's angles: (x0 c - x1 s, x0 s + x1 c).

    Equal to sam2's `view_as_complex(x) * polar(1, angle)`; `cos`/`sin` broadcast over [..., N, D/2].
    """
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


def _rope_attention(attn, q, k, v, cos, sin, num_k_exclude_rope):
    """sam2 `RoPEAttention.forward` with the real rotation; keys beyond the spatial ones keep no RoPE."""
    q = attn._separate_heads(attn.q_proj(q), attn.num_heads)
    k = attn._separate_heads(attn.k_proj(k), attn.num_heads)
    v = attn._separate_heads(attn.v_proj(v), attn.num_heads)
    q = apply_rope_real(q, cos, sin)
    num_q = q.shape[-2]
    num_k_rope = k.shape[-2] - num_k_exclude_rope
    k_rope, k_rest = k[:, :, :num_k_rope], k[:, :, num_k_rope:]
    # Spatial keys are `repeat` memory frames of the same grid: rotate each with the query table.
    repeat = num_k_rope // num_q
    k_rope = k_rope.reshape(k.shape[0], k.shape[1], repeat, num_q, k.shape[-1])
    k_rope = apply_rope_real(k_rope, cos, sin).reshape(k.shape[0], k.shape[1], repeat * num_q, k.shape[-1])
    k = torch.cat([k_rope, k_rest], dim=2)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.out_proj(attn._recombine_heads(out))


class MemoryAttention(nn.Module):
    """Current frame features + a bank of M spatial memories and P object pointers -> conditioned features.

    Inputs: image_embed [B, C, h, w], image_pos [1, C, h, w], memory [B, M, Cm, h, w],
    memory_pos [B, M, Cm, h, w] (the memory encoder's spatial encoding), memory_tpos_index int64
    [M] (SAM2's `num_maskmem - t_pos - 1`), obj_ptrs [B, P, C], obj_ptr_tpos [P] (signed frame
    distance / (max pointers - 1)). M and P are dynamic axes; the bank itself lives on the host.
    """

    input_names = (
        "image_embed",
        "image_pos",
        "memory",
        "memory_pos",
        "memory_tpos_index",
        "obj_ptrs",
        "obj_ptr_tpos",
    )
    output_names = ("conditioned_embed",)

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        first = model.memory_attention.layers[0]
        for layer in model.memory_attention.layers:
            for attn in (layer.self_attn, layer.cross_attn_image):
                if (
                    attn.num_heads != first.self_attn.num_heads
                    or attn.internal_dim != first.self_attn.internal_dim
                ):
                    raise ValueError("memory attention layers with different head layouts are not supported")
        head_dim = first.self_attn.internal_dim // first.self_attn.num_heads
        theta = first.self_attn.compute_cis.keywords["theta"]
        self.rope_dim, self.rope_theta = head_dim, theta
        self.eval()

    def forward(self, image_embed, image_pos, memory, memory_pos, memory_tpos_index, obj_ptrs, obj_ptr_tpos):
        model = self.model
        attention = model.memory_attention
        batch, channels, height, width = image_embed.shape
        mem_dim = memory.shape[2]
        tpos = model.maskmem_tpos_enc.reshape(model.num_maskmem, mem_dim)[memory_tpos_index]  # [M, Cm]
        spatial = memory.flatten(3).permute(0, 1, 3, 2).flatten(1, 2)  # [B, M*hw, Cm]
        spatial_pos = (memory_pos.flatten(3).permute(0, 1, 3, 2) + tpos[None, :, None, :]).flatten(1, 2)

        ptr_pos = get_1d_sine_pe(obj_ptr_tpos, dim=channels if model.proj_tpos_enc_in_obj_ptrs else mem_dim)
        ptr_pos = model.obj_ptr_tpos_proj(ptr_pos)  # [P, Cm]
        split = channels // mem_dim
        num_ptrs = obj_ptrs.shape[1]
        # A C-wide pointer becomes C / Cm tokens, exactly as SAM2 splits it.
        ptr_tokens = obj_ptrs.reshape(batch, num_ptrs, split, mem_dim).flatten(1, 2)
        ptr_tokens_pos = ptr_pos.repeat_interleave(split, dim=0).unsqueeze(0).expand(batch, -1, -1)
        num_ptr_tokens = num_ptrs * split

        mem = torch.cat([spatial, ptr_tokens], dim=1)
        mem_pos = torch.cat([spatial_pos, ptr_tokens_pos], dim=1)

        curr = image_embed.flatten(2).transpose(1, 2)  # [B, hw, C]
        curr_pos = image_pos.flatten(2).transpose(1, 2)
        output = curr + 0.1 * curr_pos if attention.pos_enc_at_input else curr
        # Computed here from the feature size rather than stored: stored tables get folded into
        # every consumer by the TorchScript exporter (64 copies, 85 % of the file at 512 px).
        cos, sin = axial_rope_tables(self.rope_dim, width, height, self.rope_theta)
        for layer in attention.layers:
            tgt2 = layer.norm1(output)
            q = tgt2 + curr_pos if layer.pos_enc_at_attn else tgt2
            output = output + _rope_attention(layer.self_attn, q, q, tgt2, cos, sin, 0)
            tgt2 = layer.norm2(output)
            output = output + _rope_attention(
                layer.cross_attn_image,
                tgt2 + curr_pos if layer.pos_enc_at_cross_attn_queries else tgt2,
                mem + mem_pos if layer.pos_enc_at_cross_attn_keys else mem,
                mem,
                cos,
                sin,
                num_ptr_tokens,
            )
            tgt2 = layer.norm3(output)
            output = output + layer.linear2(layer.activation(layer.linear1(tgt2)))
        output = attention.norm(output)
        return output.transpose(1, 2).reshape(batch, channels, height, width)


class MemoryEncoder(nn.Module):
    """Raw image embedding + the kept low-res mask logits -> memory features and their position encoding.

    Mirrors `SAM2Base._encode_new_memory`: upsample to the image size, binarise (prompted frames,
    when the model says so) or sigmoid, scale and bias, encode, and add the no-object embedding
    where the object-score logit says the object is absent.
    """

    input_names = ("image_embed", "mask_logits", "binarize", "object_score_logits")
    output_names = ("memory", "memory_pos")

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, image_embed, mask_logits, binarize, object_score_logits):
        model = self.model
        high_res = F.interpolate(
            mask_logits, size=(model.image_size, model.image_size), mode="bilinear", align_corners=False
        )
        hard = binarize.reshape(-1, 1, 1, 1) > 0.5
        mask = torch.where(hard, (high_res > 0).float(), torch.sigmoid(high_res))
        mask = mask * model.sigmoid_scale_for_mem_enc + model.sigmoid_bias_for_mem_enc
        out = model.memory_encoder(image_embed, mask, skip_mask_sigmoid=True)
        features, pos = out["vision_features"], out["vision_pos_enc"][-1]
        if model.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()
            features = features + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
        return features, pos


def check_rope_equivalence(model, batch: int = 1, memories: int = 2, seed: int = 0) -> float:
    """Max |real RoPE - sam2's complex RoPE| on random q/k of this model's shapes (the equivalence proof)."""
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    size = model.image_size // model.backbone_stride
    attn = model.memory_attention.layers[0].cross_attn_image
    head_dim = attn.internal_dim // attn.num_heads
    theta = attn.compute_cis.keywords["theta"]
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, attn.num_heads, size * size, head_dim, generator=generator)
    k = torch.randn(batch, attn.num_heads, memories * size * size, head_dim, generator=generator)
    freqs = compute_axial_cis(head_dim, size, size, theta)
    q_ref, k_ref = apply_rotary_enc(q, k, freqs_cis=freqs, repeat_freqs_k=True)
    cos, sin = axial_rope_tables(head_dim, size, size, theta)
    q_real = apply_rope_real(q, cos, sin)
    k_real = apply_rope_real(k.reshape(batch, attn.num_heads, memories, size * size, head_dim), cos, sin)
    k_real = k_real.reshape(k.shape)
    return float(max((q_real - q_ref).abs().max(), (k_real - k_ref).abs().max()))
