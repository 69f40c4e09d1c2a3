"""Random-weights Qwen2.5-VL / Qwen3-VL folders of the published architectures, with a tokenizer.

Sizes are shrunk from the published configs (Qwen2.5-VL-3B-Instruct, Qwen3-VL-2B-Instruct):
same layer types, window / full-attention pattern, deepstack taps, patch and merge sizes and
M-RoPE sections in proportion; the tiny ones keep a few layers so tests are fast, the "-0.6b"
ones keep the published text decoders of Qwen2.5-0.5B / Qwen3-0.6B (vocabulary 151,936 included)
and a shortened published-width vision tower, for latency work. Outputs are meaningless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vigil360.errors import UserError
from vigil360.models.vlm.random_init import _CORPUS, RANDOM_INIT_MARKER

QWEN_FAMILIES = ("qwen2_5_vl", "qwen3_vl")

# The published chat layout: system and user turns, images as <|vision_start|><|image_pad|><|vision_end|>
# before the text, then "<|im_start|>assistant\n". Written here from the published format.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>"]


@dataclass(frozen=True)
class QwenSize:
    family: str
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    head_dim: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    vocab_size: int | None  # None: the trained tokenizer's size
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    patch_size: int
    # Qwen2.5-VL: window size in pixels and the layers with full attention; Qwen3-VL: the learned
    # position grid (entries) and the layers whose merged features feed the decoder (deepstack).
    window_size: int = 112
    full_attention_layers: tuple[int, ...] = ()
    position_embeddings: int = 2304
    deepstack_layers: tuple[int, ...] = ()
    max_pixels: int = 28 * 28 * 64
    tokenizer_vocab: int = 600
    # Text weights redrawn from N(0, init_std) so greedy decoding of a tiny model varies (a
    # constant token stream would make token parity nearly vacuous).
    init_std: float | None = None


ARCHITECTURES: dict[str, QwenSize] = {
    "qwen2_5_vl-tiny": QwenSize("qwen2_5_vl", 64, 2, 4, 2, 128, 16, (2, 3, 3), None, 32, 4, 2, 64, 14,
                                window_size=56, full_attention_layers=(3,), init_std=0.2),
    "qwen3_vl-tiny": QwenSize("qwen3_vl", 64, 2, 4, 2, 128, 16, (2, 3, 3), None, 32, 3, 2, 64, 16,
                              position_embeddings=64, deepstack_layers=(0, 1), init_std=0.2),
    # Qwen2.5-0.5B text (24 x 896, 14 heads, 2 KV) + 8 of the 32 published 1280-wide vision blocks.
    "qwen2_5_vl-0.6b": QwenSize("qwen2_5_vl", 896, 24, 14, 2, 4864, 64, (8, 12, 12), 151936, 1280, 8, 16, 3420, 14,
                                window_size=112, full_attention_layers=(3, 7), tokenizer_vocab=2000),
    # Qwen3-0.6B text (28 x 1024, 16 heads, 8 KV, head_dim 128) + 8 of the 24 published 1024-wide blocks.
    "qwen3_vl-0.6b": QwenSize("qwen3_vl", 1024, 28, 16, 8, 3072, 128, (24, 20, 20), 151936, 1024, 8, 16, 4096, 16,
                              position_embeddings=2304, deepstack_layers=(1, 3, 5), tokenizer_vocab=2000),
}


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator([*_CORPUS, '[{"bbox_2d": [12, 40, 300, 610], "label": "person"}]'] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token=None, extra_special_tokens={"image_token": "<|image_pad|>"})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_image_processor(size: QwenSize):
    from transformers import Qwen2VLImageProcessorPil

    # Qwen3-VL normalises with mean = std = 0.5 where Qwen2.5-VL uses the CLIP statistics.
    stats = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3} if size.family == "qwen3_vl" else {}
    factor = size.patch_size * 2
    return Qwen2VLImageProcessorPil(min_pixels=factor * factor * 4, max_pixels=size.max_pixels,
                                    patch_size=size.patch_size, merge_size=2, temporal_patch_size=2, **stats)


def build_model(size: QwenSize, tokenizer, seed: int = 0):
    import torch

    token = tokenizer.convert_tokens_to_ids
    vocab = size.vocab_size or len(tokenizer)
    text = {"hidden_size": size.text_hidden, "num_hidden_layers": size.text_layers,
            "num_attention_heads": size.text_heads, "num_key_value_heads": size.text_kv_heads,
            "intermediate_size": size.text_intermediate, "vocab_size": vocab, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6, "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {"depth": size.vision_layers, "hidden_size": size.vision_hidden, "num_heads": size.vision_heads,
              "intermediate_size": size.vision_intermediate, "out_hidden_size": size.text_hidden,
              "patch_size": size.patch_size, "spatial_merge_size": 2, "temporal_patch_size": 2}
    ids = {"image_token_id": token("<|image_pad|>"), "video_token_id": token("<|video_pad|>"),
           "vision_start_token_id": token("<|vision_start|>"), "vision_end_token_id": token("<|vision_end|>")}
    if size.family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(size.mrope_section)}
        vision.update(window_size=size.window_size, fullatt_block_indexes=list(size.full_attention_layers))
        tie = vocab < 100000  # the 3B ties its embeddings; keep lm_head separate at the 0.5B's scale
    else:
        from transformers import Qwen3VLConfig as Config
        from transformers import Qwen3VLForConditionalGeneration as Model

        text.update(head_dim=size.head_dim, rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                                             "mrope_section": list(size.mrope_section),
                                                             "mrope_interleaved": True})
        vision.update(num_position_embeddings=size.position_embeddings,
                      deepstack_visual_indexes=list(size.deepstack_layers))
        tie = True  # Qwen3-VL-2B ties its input and output embeddings
    config = Config(text_config=text, vision_config=vision, tie_word_embeddings=tie, **ids)
    torch.manual_seed(seed)
    model = Model(config).eval()
    if size.init_std is not None:
        with torch.no_grad():
            for parameter in model.model.language_model.parameters():
                if parameter.dim() >= 2:
                    parameter.normal_(0.0, size.init_std)
            if not tie:
                model.lm_head.weight.normal_(0.0, size.init_std)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def model_family(model_dir: str | Path) -> str | None:
    """The folder's `model_type` (None when it has no readable config.json: the caller reports that)."""
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def write_random_qwen(out: str | Path, architecture: str = "qwen2_5_vl-tiny", seed: int = 0) -> Path:
    """Save a random-weights Qwen-VL folder (model, tokenizer with chat template, image processor)."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"unknown Qwen-VL architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    size = ARCHITECTURES[architecture]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(size.tokenizer_vocab)
    model = build_model(size, tokenizer, seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    build_image_processor(size).save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["_vigil360_weights"] = f"{RANDOM_INIT_MARKER}, seed {seed}, architecture {architecture}"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(
        f"# {architecture} with RANDOM WEIGHTS (seed {seed})\n\nBuilt by vigil360.models.vlm.qwen.random_init for "
        "tests and latency benchmarks. Its outputs are meaningless; its compute matches the architecture.\n"
    )
    return out
