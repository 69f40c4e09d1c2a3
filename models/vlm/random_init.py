"""Random-weights VLM folders of real architectures, for tests and latency benchmarks.

No weights can be downloaded here, and none are needed for what these folders are used for:
checking code paths (prompt -> tokens -> parse), export parity, and latency - compute does not
depend on weight values. Every folder written here says `random-init` in its config and its
README so nobody mistakes its gibberish for a model's answer.

The tokenizer is a byte-level BPE trained in-process on a few sentences; the image and
utterance markers are declared as named special tokens so they survive save/reload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vigil360.errors import UserError

RANDOM_INIT_MARKER = "random-init"

# SmolVLM-style chat layout, written here (not copied): "<|im_start|>User:<image>text<end_of_utterance>\n"
# ... "Assistant:". Real model folders bring their own template and it is used instead.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %}{{ ' ' + message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ ' ' + part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
            "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

_CORPUS = [
    "Answer with JSON only. The perpetrator grabs the bag from the victim near the crossing.",
    '[{"role": "perpetrator", "label": "person", "box": [120, 80, 400, 900], "confidence": 0.8}]',
    '{"appearance": "a person in a dark jacket carrying a backpack", "motion": "walks quickly to the left"}',
    "Describe the highlighted person: clothing, carried objects and actions. Never identity, age or looks.",
    "victim target related bicycle car ball scooter dog stroller umbrella phone",
    "0 1 2 3 4 5 6 7 8 9 , . : ; [ ] { } ( ) ' \" - _ ? ! true false null",
]


@dataclass(frozen=True)
class ArchitectureSize:
    """The sizes that set compute; everything else follows the architecture's defaults."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vocab_size: int | None  # None: the trained tokenizer's size
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    image_size: int
    patch_size: int
    scale_factor: int
    tokenizer_vocab: int
    # Text weights redrawn from N(0, init_std): the default init (0.02) makes a model of either
    # size repeat one token forever, which makes a token-for-token parity check vacuous. Measured
    # (seed 0, 2 images, 32 greedy tokens): 256M at 0.02 -> 1 distinct token, 0.05 -> 28 with a
    # top-2 logit margin of 7e-4 (a float32 rounding can flip it), 0.2 -> 32 with a margin >= 0.18.
    init_std: float | None = None


# "smolvlm-256m" follows the published SmolVLM-256M-Instruct config (SigLIP 512 px / patch 16,
# 12 layers x 768; SmolLM2 30 layers x 576, 9 heads, 3 KV heads; pixel shuffle 4 -> 64 tokens/image).
ARCHITECTURES: dict[str, ArchitectureSize] = {
    "idefics3-tiny": ArchitectureSize(64, 2, 4, 2, 128, None, 32, 1, 2, 64, 64, 16, 2, 600, init_std=0.3),
    "smolvlm-256m": ArchitectureSize(576, 30, 9, 3, 1536, 49280, 768, 12, 12, 3072, 512, 16, 4, 2000,
                                     init_std=0.2),
}


def image_seq_len(size: ArchitectureSize) -> int:
    return (size.image_size // size.patch_size) ** 2 // size.scale_factor**2


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
        bos_token="<|im_start|>", unk_token=None,
        extra_special_tokens={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                              "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
    )


def build_processor(tokenizer, size: ArchitectureSize):
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    images = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": size.image_size},
        max_image_size={"longest_edge": size.image_size},
    )
    return Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=image_seq_len(size),
                             chat_template=CHAT_TEMPLATE)


def build_model(size: ArchitectureSize, tokenizer, seed: int = 0):
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    vocab = size.vocab_size or len(tokenizer)
    config = Idefics3Config(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=size.scale_factor,
        tie_word_embeddings=True,
        vision_config={"hidden_size": size.vision_hidden, "num_hidden_layers": size.vision_layers,
                       "num_attention_heads": size.vision_heads, "intermediate_size": size.vision_intermediate,
                       "image_size": size.image_size, "patch_size": size.patch_size},
        text_config={"model_type": "llama", "hidden_size": size.text_hidden, "num_hidden_layers": size.text_layers,
                     "num_attention_heads": size.text_heads, "num_key_value_heads": size.text_kv_heads,
                     "intermediate_size": size.text_intermediate, "vocab_size": vocab,
                     "max_position_embeddings": 8192, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
                     "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": True},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    if size.init_std is not None:
        with torch.no_grad():
            # Text side only: the vision tower keeps its default scale, as real checkpoints do.
            for parameter in model.model.text_model.parameters():
                if parameter.dim() >= 2:
                    parameter.normal_(0.0, size.init_std)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def write_random_vlm(out: str | Path, architecture: str = "idefics3-tiny", seed: int = 0) -> Path:
    """Save a random-weights model folder (model, tokenizer, processor) that loads like a real one."""
    if architecture not in ARCHITECTURES:
        raise UserError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    size = ARCHITECTURES[architecture]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(size.tokenizer_vocab)
    processor = build_processor(tokenizer, size)
    model = build_model(size, tokenizer, seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["_vigil360_weights"] = f"{RANDOM_INIT_MARKER}, seed {seed}, architecture {architecture}"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(
        f"# {architecture} with RANDOM WEIGHTS (seed {seed})\n\nBuilt by vigil360.models.vlm.random_init for "
        "tests and latency benchmarks. Its outputs are meaningless; its compute matches the architecture.\n"
    )
    return out


def weights_provenance(model_dir: str | Path) -> str:
    """'random-init, seed N, ...' for folders built here, else 'unknown (local folder)'."""
    config_path = Path(model_dir) / "config.json"
    if config_path.is_file():
        marker = json.loads(config_path.read_text()).get("_vigil360_weights")
        if marker:
            return str(marker)
    return "pretrained (local folder, not hashed)"
