"""Grid-agnostic torch wrappers around the Qwen-VL vision towers and text decoder, and their export.

The towers' own forward passes derive window indices, rotary tables and attention segments from
`image_grid_thw` with Python loops and `.tolist()`, which `torch.export` cannot follow for a grid it
has not seen (measured: the dynamo export fails unless the grid is fixed). These wrappers run the
same modules from the patch level, taking what depends on the grid as tensors the host computes
(`models/vlm/qwen/inputs.py`): patch (row, col) positions, the window permutation and its inverse,
and per-patch window/image numbers that become block-diagonal attention masks - so one graph serves
every image size.

The decoder takes 3D (M-RoPE) position ids; Qwen3-VL's deepstack features enter as a dense [layers,
1, seq, hidden] tensor added after the first decoder layers (zeros at text positions and during
decoding, where transformers adds nothing - adding zeros changes no bit).
"""

from __future__ import annotations

from pathlib import Path


def _attention(module, x, cos, sin, bias):
    """The tower's attention with a dense mask instead of a Python loop over segments."""
    import torch
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    seq = x.shape[0]
    q, k, v = module.qkv(x).reshape(seq, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    q, k, v = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=module.scaling)
    return module.proj(out.squeeze(0).transpose(0, 1).reshape(seq, -1))


def _segment_bias(segments, dtype):
    import torch

    same = segments[:, None] == segments[None, :]
    return torch.zeros(same.shape, dtype=dtype).masked_fill(~same, torch.finfo(dtype).min)


def vision_wrapper(model):
    import torch

    family = model.config.model_type
    tower = model.model.visual

    class Qwen25Vision(torch.nn.Module):
        """pixel patches (merge-block order) -> merged features in image order."""

        def __init__(self):
            super().__init__()
            self.tower = tower
            self.full = set(tower.fullatt_block_indexes)

        def forward(self, pixel_values, positions, window_order, window_inverse, window_ids, image_ids):
            hidden = self.tower.patch_embed(pixel_values)
            seq = hidden.shape[0]
            hidden = self.tower.permute_input_for_window_attn(hidden, window_order, seq)
            cos, sin = self.tower.rotary_pos_emb(hidden, positions)
            cos = self.tower.permute_input_for_window_attn(cos, window_order, seq)
            sin = self.tower.permute_input_for_window_attn(sin, window_order, seq)
            window_bias = _segment_bias(window_ids, hidden.dtype)
            full_bias = _segment_bias(image_ids, hidden.dtype)
            for index, block in enumerate(self.tower.blocks):
                bias = full_bias if index in self.full else window_bias
                hidden = hidden + _attention(block.attn, block.norm1(hidden), cos, sin, bias)
                hidden = hidden + block.mlp(block.norm2(hidden))
            return self.tower.merger(hidden)[window_inverse]

    class Qwen3Vision(torch.nn.Module):
        """pixel patches -> merged features and the deepstack features [taps, tokens, hidden]."""

        def __init__(self):
            super().__init__()
            self.tower = tower
            self.taps = list(tower.deepstack_visual_indexes)

        def forward(self, pixel_values, positions, interp_indices, interp_weights, image_ids):
            hidden = self.tower.patch_embed(pixel_values)
            hidden = hidden + (self.tower.pos_embed(interp_indices) * interp_weights[:, :, None]).sum(1)
            cos, sin = self.tower.rotary_pos_emb(hidden, positions)
            bias = _segment_bias(image_ids, hidden.dtype)
            deepstack = []
            for index, block in enumerate(self.tower.blocks):
                hidden = hidden + _attention(block.attn, block.norm1(hidden), cos, sin, bias)
                hidden = hidden + block.mlp(block.norm2(hidden))
                if index in self.taps:
                    deepstack.append(self.tower.deepstack_merger_list[self.taps.index(index)](hidden))
            return self.tower.merger(hidden), torch.stack(deepstack)

    return (Qwen25Vision() if family == "qwen2_5_vl" else Qwen3Vision()).eval()


VISION_INPUTS = {
    "qwen2_5_vl": ["pixel_values", "positions", "window_order", "window_inverse", "window_ids", "image_ids"],
    "qwen3_vl": ["pixel_values", "positions", "interp_indices", "interp_weights", "image_ids"],
}
VISION_OUTPUTS = {"qwen2_5_vl": ["image_features"], "qwen3_vl": ["image_features", "deepstack_features"]}


def decoder_wrapper(model):
    import torch
    from transformers import DynamicCache

    text_config = model.config.text_config
    language = model.model.language_model
    taps = len(getattr(model.config.vision_config, "deepstack_visual_indexes", ()) or ())

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.language = language
            self.lm_head = model.lm_head
            self.layers = text_config.num_hidden_layers

        def forward(self, inputs_embeds, attention_mask, position_ids, past, deepstack=None):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.layers)],
                                 config=text_config)
            hooks = [self.language.layers[i].register_forward_hook(
                lambda _module, _args, output, i=i: output + deepstack[i]) for i in range(taps)]
            try:
                out = self.language(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                    position_ids=position_ids, cache=cache, use_cache=True)
            finally:
                for hook in hooks:
                    hook.remove()
            logits = self.lm_head(out.last_hidden_state[:, -1, :])
            presents = []
            for layer in cache.layers:
                presents.extend((layer.keys, layer.values))
            return (logits, *presents)

    return Decoder().eval(), taps


def export_vision(model, path: Path, example: dict) -> tuple[list[str], list[str]]:
    """`example`: host inputs for one image (numpy), as `QwenOnnxBackend.vision_inputs` builds them."""
    import torch

    family = model.config.model_type
    names = VISION_INPUTS[family]
    args = tuple(torch.from_numpy(example[name]) for name in names)
    merged = torch.export.Dim("merged_tokens", min=2, max=16384)
    patches = 4 * merged
    per_name = {"pixel_values": {0: patches}, "positions": {0: patches}, "window_order": {0: merged},
                "window_inverse": {0: merged}, "window_ids": {0: patches}, "image_ids": {0: patches},
                "interp_indices": {0: patches}, "interp_weights": {0: patches}}
    torch.onnx.export(vision_wrapper(model), args, str(path), dynamo=True, input_names=names,
                      output_names=VISION_OUTPUTS[family], dynamic_shapes=tuple(per_name[n] for n in names),
                      external_data=True, optimize=True, verbose=False)
    return names, VISION_OUTPUTS[family]


def cache_shape(text_config) -> tuple[int, int]:
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    return text_config.num_key_value_heads, head_dim


def export_decoder(model, path: Path) -> tuple[list[str], list[str]]:
    import torch

    decoder, taps = decoder_wrapper(model)
    text = model.config.text_config
    kv_heads, head_dim = cache_shape(text)
    seq, past_len = 3, 5
    past = tuple(torch.randn(1, kv_heads, past_len, head_dim) for _ in range(2 * text.num_hidden_layers))
    positions = torch.arange(past_len, past_len + seq).view(1, 1, -1).expand(3, 1, -1).contiguous()
    args = [torch.randn(1, seq, text.hidden_size), torch.ones(1, past_len + seq, dtype=torch.long), positions, past]
    dyn = torch.export.Dim.DYNAMIC
    shapes = [{1: dyn}, {1: dyn}, {2: dyn}, tuple({2: dyn} for _ in past)]
    past_names = [f"past.{i}.{kind}" for i in range(text.num_hidden_layers) for kind in ("key", "value")]
    inputs = ["inputs_embeds", "attention_mask", "position_ids", *past_names]
    if taps:
        args.append(torch.randn(taps, 1, seq, text.hidden_size))
        shapes.append({2: dyn})
        inputs.append("deepstack")
    outputs = ["logits", *[name.replace("past", "present") for name in past_names]]
    torch.onnx.export(decoder, tuple(args), str(path), dynamo=True, input_names=inputs, output_names=outputs,
                      dynamic_shapes=tuple(shapes), external_data=True, optimize=True, verbose=False)
    return inputs, outputs
