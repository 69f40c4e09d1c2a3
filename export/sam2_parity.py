"""Is the export right: ONNX against torch, and the export wrappers against sam2's own code."""

from __future__ import annotations

import numpy as np

from vigil360.export.sam2_graphs import example_inputs, torch_wrappers, wrapper_for


def parity(session, module, args: tuple) -> dict[str, float]:
    """max |onnxruntime - torch| per output on the same inputs."""
    import torch

    with torch.no_grad():
        expected = module(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feeds = {name: tensor.numpy() for name, tensor in zip(module.input_names, args, strict=True)}
    got = session.run(list(module.output_names), feeds)
    return {
        name: float(np.max(np.abs(g - e.numpy()))) if g.size else 0.0
        for name, g, e in zip(module.output_names, got, expected, strict=True)
    }


def memory_attention_reference_gap(sam, seed: int = 2) -> float:
    """Max |export wrapper - sam2's own MemoryAttention| (complex RoPE, sequence-first) on the same bank.

    The reference assembles the memory exactly as `SAM2Base._prepare_memory_conditioned_features`
    does: spatial memories plus temporal encodings, then pointers split into mem_dim tokens.
    """
    import torch
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    args = example_inputs(sam, objects=2, memories=3, pointers=4, seed=seed)["memory_attention"]
    embed, pos, memory, memory_pos, tpos_index, ptrs, ptr_tpos = args
    batch, memories = memory.shape[:2]
    split = sam.hidden_dim // sam.mem_dim
    with torch.no_grad():
        ours = wrapper_for(sam, "memory_attention")(*args)
        spatial = [memory[:, i].flatten(2).permute(2, 0, 1) for i in range(memories)]
        spatial_pos = [
            memory_pos[:, i].flatten(2).permute(2, 0, 1) + sam.maskmem_tpos_enc[int(tpos_index[i])]
            for i in range(memories)
        ]
        ptr_pos = sam.obj_ptr_tpos_proj(get_1d_sine_pe(ptr_tpos, dim=sam.hidden_dim))
        ptr_pos = ptr_pos.unsqueeze(1).expand(-1, batch, sam.mem_dim).repeat_interleave(split, 0)
        ptr_tokens = ptrs.transpose(0, 1).reshape(-1, batch, split, sam.mem_dim)
        ptr_tokens = ptr_tokens.permute(0, 2, 1, 3).flatten(0, 1)
        reference = sam.memory_attention(
            curr=[embed.flatten(2).permute(2, 0, 1)],
            curr_pos=[pos.expand(batch, -1, -1, -1).flatten(2).permute(2, 0, 1)],
            memory=torch.cat([*spatial, ptr_tokens]),
            memory_pos=torch.cat([*spatial_pos, ptr_pos]),
            num_obj_ptr_tokens=ptr_tokens.shape[0],
        )
    return float((ours - reference.permute(1, 2, 0).reshape(ours.shape)).abs().max())


def reference_checks(sam) -> dict[str, str]:
    """The rewrites against sam2's own code: the real RoPE, and the memory-attention wrapper as a whole."""
    return {
        "rope_real_vs_complex_max_abs": f"{torch_wrappers().check_rope_equivalence(sam, memories=3):.3g}",
        "memory_attention_wrapper_vs_sam2_max_abs": f"{memory_attention_reference_gap(sam):.3g}",
    }
