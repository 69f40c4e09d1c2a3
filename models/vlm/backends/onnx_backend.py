"""ONNX Runtime backend: greedy decoding in a loop over the graphs `vigil360 export vlm` writes.

The host does what Idefics3's forward does around the graphs: tokenise with the exported
processor, look tokens up in the embedding table, put the vision graph's features at the
`<image>` positions, then call the decoder once for the prompt and once per new token with the
key/value cache it returned. Prefill feeds a one-slot past that the attention mask hides, so one
decoder graph serves both phases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vigil360.errors import UserError
from vigil360.models.runtime import ProviderChoice, ShapeProfiles, create_session, run_options
from vigil360.models.vlm.backends.common import DecodeClock, square_image
from vigil360.models.vlm.interfaces import Generation, VlmRequest, check_images
from vigil360.models.vlm.prompts import chat_messages

# TensorRT shape ranges: prompts of up to MAX_IMAGES views, contexts of up to MAX_CONTEXT tokens; the
# engine is tuned for one-token decoding steps over an OPT_CONTEXT-token cache.
MAX_IMAGES = 8
MAX_CONTEXT = 4096
OPT_CONTEXT = 512


def tensorrt_profiles(config: dict, past_names: list[str], max_images: int = MAX_IMAGES,
                      max_context: int = MAX_CONTEXT, opt_context: int = OPT_CONTEXT) -> dict[str, ShapeProfiles]:
    """One shape profile per graph covering prefill (long input, one-slot past) and every decoding step
    (one token, growing past), so the TensorRT EP builds each engine once instead of per length."""
    size, hidden = config["image_size"], config["hidden_size"]
    kv, head = config["kv_heads"], config["head_dim"]
    vision = {"pixel_values": ((1, 3, size, size), (1, 3, size, size), (max_images, 3, size, size))}
    decoder: ShapeProfiles = {
        "inputs_embeds": ((1, 1, hidden), (1, 1, hidden), (1, max_context, hidden)),
        # past + new positions: prefill has a one-slot past, so at least 2.
        "attention_mask": ((1, 2), (1, opt_context + 1), (1, max_context + 1)),
        "position_ids": ((1, 1), (1, 1), (1, max_context)),
    }
    for name in past_names:
        decoder[name] = ((1, kv, 1, head), (1, kv, opt_context, head), (1, kv, max_context, head))
    return {"vision": vision, "decoder": decoder}


def load_checked_manifest(folder: Path, verify: bool):
    """An exported VLM's manifest; an export whose parity check failed is refused."""
    from vigil360.models.manifest import load_manifest

    manifest = load_manifest(folder, kind="vlm", verify=verify)
    if manifest.notes.get("parity", "").startswith("failed"):
        raise UserError(f"{folder}: this export failed its parity check ({manifest.notes['parity']}); "
                        "re-export before using it")
    return manifest


class OnnxBackend:
    name = "onnx"

    def __init__(self, export_dir: str | Path, providers: ProviderChoice = "auto", threads: int | None = None,
                 verify: bool = True, trt_cache_dir: str | Path | None = None):
        import onnxruntime
        from transformers import AutoProcessor

        self._ort = onnxruntime

        folder = Path(export_dir)
        self.manifest = load_checked_manifest(folder, verify)
        self.config = self.manifest.config
        missing = {"image_size", "image_token_id", "eos_token_ids", "kv_heads", "head_dim", "hidden_size",
                   "num_layers"} - set(self.config)
        if missing:
            raise UserError(f"{folder}: manifest config lacks {sorted(missing)} (re-run `vigil360 export vlm`)")
        past_names = [f"past.{i}.{kind}" for i in range(int(self.config["num_layers"])) for kind in ("key", "value")]
        profiles = tensorrt_profiles(self.config, past_names)
        self.vision = create_session(folder / self.manifest.file("vision").path, providers, threads, trt_cache_dir,
                                     profiles["vision"])
        self.decoder = create_session(folder / self.manifest.file("decoder").path, providers, threads, trt_cache_dir,
                                      profiles["decoder"])
        self.embed = np.load(folder / self.manifest.file("embed_tokens").path, mmap_mode="r")
        self.processor = AutoProcessor.from_pretrained(folder)
        self.tokenizer = self.processor.tokenizer
        self.float_type = np.float16 if self.manifest.precision == "fp16" else np.float32
        self.eos = set(self.config["eos_token_ids"])
        self._eos_mask = np.zeros(int(self.embed.shape[0]), bool)
        self._eos_mask[sorted(self.eos)] = True
        self._past_names = [n.name for n in self.decoder.get_inputs() if n.name.startswith("past.")]
        self._output_names = [n.name for n in self.decoder.get_outputs()]
        # On a GPU the cache stays in device memory between steps; only the logits come back.
        gpu = self.decoder.get_providers()[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
        self._cache_device = "cuda" if gpu else "cpu"
        if self._output_names[0] != "logits" or len(self._output_names) != len(self._past_names) + 1:
            raise UserError(f"{folder}: decoder outputs {self._output_names[:3]}... are not logits + one present "
                            "per past input (re-run `vigil360 export vlm`)")

    def prepare(self, request: VlmRequest) -> dict[str, np.ndarray]:
        check_images(request.images, "images")
        size = self.config["image_size"]
        images = [square_image(image, size) for image in request.images]
        messages = chat_messages(request, [{"type": "image"} for _ in images])
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=text, images=[images], return_tensors="np")
        return {"input_ids": inputs["input_ids"].astype(np.int64),
                "pixel_values": inputs["pixel_values"][0].astype(self.float_type)}

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        return self.vision.run(None, {"pixel_values": pixel_values}, run_options())[0]

    def prompt_embeddings(self, input_ids: np.ndarray, features: np.ndarray) -> np.ndarray:
        embeds = np.asarray(self.embed[input_ids[0]], dtype=self.float_type)
        slots = np.flatnonzero(input_ids[0] == self.config["image_token_id"])
        flat = features.reshape(-1, features.shape[-1])
        if slots.size != flat.shape[0]:
            raise UserError(f"prompt has {slots.size} image tokens but the vision graph gave {flat.shape[0]} "
                            "features (processor and export disagree on image_seq_len)")
        embeds[slots] = flat
        return embeds[None]

    def decode_steps(self, inputs: dict[str, np.ndarray], max_new_tokens: int,
                     clock: DecodeClock | None = None, ignore_eos: bool = False) -> Iterator[int]:
        """Greedy token ids, one at a time, ending at EOS (yielded) or the token budget.

        `ignore_eos` decodes the full budget (benchmarks: a fixed token count per run).
        """
        for token, _ in self.decode_logits(inputs, max_new_tokens, clock, ignore_eos):
            yield token

    def decode_logits(self, inputs: dict[str, np.ndarray], max_new_tokens: int,
                      clock: DecodeClock | None = None, ignore_eos: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """`decode_steps` with each step's logits [vocab] (parity checks compare them with torch's)."""
        features = self.encode_images(inputs["pixel_values"])
        if clock is not None:
            clock.vision()
        embeds = self.prompt_embeddings(inputs["input_ids"], features)
        seq = embeds.shape[1]
        # The cache stays in onnxruntime's OrtValues from step to step (IO binding): each step's
        # present key/values are bound as the next step's past without a round trip through numpy.
        empty = np.zeros((1, self.config["kv_heads"], 1, self.config["head_dim"]), self.float_type)
        past = {name: self._ort.OrtValue.ortvalue_from_numpy(empty) for name in self._past_names}
        mask = np.concatenate([np.zeros((1, 1), np.int64), np.ones((1, seq), np.int64)], axis=1)
        positions = np.arange(seq, dtype=np.int64)[None]
        binding = self.decoder.io_binding()
        for _ in range(max_new_tokens):
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            # Bound by reference: these arrays must (and do) outlive the run below.
            feeds = {"inputs_embeds": np.ascontiguousarray(embeds), "attention_mask": mask, "position_ids": positions}
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            for name, value in past.items():
                binding.bind_ortvalue_input(name, value)
            binding.bind_output("logits", "cpu")
            for name in self._output_names[1:]:
                binding.bind_output(name, self._cache_device)
            # run_options(): the end of a run can stop a decode step in flight (RunOptions.terminate).
            self.decoder.run_with_iobinding(binding, run_options())
            outputs = binding.get_outputs()
            logits = outputs[0].numpy()[0]
            # Like transformers' `min_new_tokens`: EOS cannot win while the budget must be filled.
            choices = np.where(self._eos_mask, -np.inf, logits) if ignore_eos else logits
            token = int(np.argmax(choices))
            if clock is not None:
                clock.token()
            yield token, logits
            if token in self.eos and not ignore_eos:
                return
            past = dict(zip(self._past_names, outputs[1:], strict=True))
            embeds = np.asarray(self.embed[[token]], dtype=self.float_type)[None]
            next_position = int(positions[0, -1]) + 1
            positions = np.array([[next_position]], dtype=np.int64)
            mask = np.concatenate([mask, np.ones((1, 1), np.int64)], axis=1)

    def decode_ids(self, inputs: dict[str, np.ndarray], max_new_tokens: int, ignore_eos: bool = False) -> list[int]:
        return list(self.decode_steps(inputs, max_new_tokens, ignore_eos=ignore_eos))

    def stream(self, request: VlmRequest) -> Iterator[str]:
        ids: list[int] = []
        shown = ""
        for token in self.decode_steps(self.prepare(request), request.max_new_tokens):
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            # Hold back an incomplete UTF-8 sequence until the next token completes it.
            if not text.endswith("\ufffd"):
                yield text[len(shown):]
                shown = text

    def generate(self, request: VlmRequest) -> Generation:
        clock = DecodeClock()
        ids = list(self.decode_steps(self.prepare(request), request.max_new_tokens, clock))
        stop = "eos" if ids and ids[-1] in self.eos else "budget"
        return Generation(text=self.tokenizer.decode(ids, skip_special_tokens=True), new_tokens=len(ids), stop=stop,
                          **clock.seconds())

