"""SAM2's four graphs: their torch wrappers, example inputs, dynamic axes and the ONNX export.

The graphs (image encoder, prompt encoder + mask decoder, memory attention, memory encoder) are
the split every serious SAM2 deployment uses; the memory bank stays in host code
(`vigil360.models.sam2_tracker`). The wrappers themselves are in `sam2_wrappers`.
"""

from __future__ import annotations

from pathlib import Path

# Graph roles as the manifest names them, in the order a tracking step uses them.
ROLES = ("image_encoder", "mask_decoder", "memory_attention", "memory_encoder")
DEFAULT_OPSET = 18


def example_inputs(
    sam, objects: int = 2, memories: int = 3, pointers: int = 4, points: int = 2, seed: int = 0
):
    """Deterministic inputs of every graph (random but of the right shapes and ranges)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    size = sam.image_size
    h = size // sam.backbone_stride
    channels, mem_dim = sam.hidden_dim, sam.mem_dim
    image = torch.randn(1, 3, size, size, generator=generator)
    with torch.no_grad():
        feat0, feat1, embed, pos = torch_wrappers().ImageEncoder(sam)(image)
    embed_b = embed.expand(objects, -1, -1, -1).contiguous()
    labels = torch.tensor([2, 3] + [1] * (points - 2), dtype=torch.int32)[:points]
    return {
        "image_encoder": (image,),
        "mask_decoder": (
            embed_b,
            feat0,
            feat1,
            torch.rand(objects, points, 2, generator=generator) * size,
            labels.unsqueeze(0).expand(objects, -1).contiguous(),
            torch.randn(objects, 1, 4 * h, 4 * h, generator=generator),
            torch.tensor([0.0, 1.0][:objects] + [0.0] * max(0, objects - 2)),
        ),
        "memory_attention": (
            embed_b,
            pos,
            torch.randn(objects, memories, mem_dim, h, h, generator=generator),
            torch.randn(objects, memories, mem_dim, h, h, generator=generator),
            torch.tensor([sam.num_maskmem - 1] + list(range(memories - 1)), dtype=torch.int64),
            torch.randn(objects, pointers, channels, generator=generator),
            torch.arange(1, pointers + 1, dtype=torch.float32) / (sam.max_obj_ptrs_in_encoder - 1),
        ),
        "memory_encoder": (
            embed_b,
            torch.randn(objects, 1, 4 * h, 4 * h, generator=generator) * 8.0,
            torch.tensor([1.0, 0.0][:objects] + [0.0] * max(0, objects - 2)),
            torch.tensor([[3.0], [-2.0]][:objects] + [[1.0]] * max(0, objects - 2)),
        ),
    }


def torch_wrappers():
    """The wrapper module, imported when first needed: it needs torch and sam2."""
    from vigil360.export import sam2_wrappers

    return sam2_wrappers


def dynamic_axes(role: str) -> dict[str, dict[int, str]]:
    objects = {0: "objects"}
    if role == "image_encoder":
        return {}
    if role == "mask_decoder":
        return {
            "image_embed": objects,
            "point_coords": {0: "objects", 1: "points"},
            "point_labels": {0: "objects", 1: "points"},
            "mask_input": objects,
            "has_mask_input": objects,
            "masks": objects,
            "iou": objects,
            "obj_ptrs": objects,
            "object_score_logits": objects,
        }
    if role == "memory_attention":
        return {
            "image_embed": objects,
            "memory": {0: "objects", 1: "memories"},
            "memory_pos": {0: "objects", 1: "memories"},
            "memory_tpos_index": {0: "memories"},
            "obj_ptrs": {0: "objects", 1: "pointers"},
            "obj_ptr_tpos": {0: "pointers"},
            "conditioned_embed": objects,
        }
    return {
        "image_embed": objects,
        "mask_logits": objects,
        "binarize": objects,
        "object_score_logits": objects,
        "memory": objects,
        "memory_pos": objects,
    }


def wrapper_for(sam, role: str):
    wrappers = torch_wrappers()
    return {
        "image_encoder": wrappers.ImageEncoder,
        "mask_decoder": wrappers.PromptMaskDecoder,
        "memory_attention": wrappers.MemoryAttention,
        "memory_encoder": wrappers.MemoryEncoder,
    }[role](sam)


def export_graph(module, args: tuple, path: Path, opset: int, dynamic_axes: dict) -> None:
    """TorchScript-based ONNX export: one self-contained file, dynamic axes by name.

    The dynamo exporter also works (parity within 4e-6 when tried) but takes several times longer
    on a small CPU and writes external weight files; this path keeps CI fast and each graph a single file.
    """
    import warnings

    import torch

    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(module.input_names),
            output_names=list(module.output_names),
            opset_version=opset,
            dynamo=False,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def tensor_specs(path: Path) -> tuple[list, list]:
    import onnx

    from vigil360.models.manifest import TensorSpec

    graph = onnx.load(str(path), load_external_data=False).graph
    names = {1: "float32", 6: "int32", 7: "int64", 10: "float16", 9: "bool"}

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
        return TensorSpec(
            name=value.name, shape=shape, dtype=names.get(tensor.elem_type, str(tensor.elem_type))
        )

    return [spec(v) for v in graph.input], [spec(v) for v in graph.output]
