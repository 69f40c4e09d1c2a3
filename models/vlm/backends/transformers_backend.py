"""The reference backend: a Hugging Face model folder run with transformers' `generate`.

Works with any image-text-to-text model whose processor builds without torchvision (SmolVLM v1 /
Idefics3 does; without torchvision, families whose processor declares a video processor - SmolVLM2,
Qwen2.5/3-VL, InternVL - need their `*ImageProcessorPil` class).
Decoding is greedy so the ONNX Runtime backend can be checked against it token for token.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from vigil360.errors import UserError
from vigil360.models.vlm.backends.common import DecodeClock, require_model_dir, square_image
from vigil360.models.vlm.interfaces import Generation, VlmRequest, check_images
from vigil360.models.vlm.prompts import chat_messages


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir: str | Path, threads: int | None = None, dtype: str = "float32"):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = require_model_dir(model_dir)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            self.processor = AutoProcessor.from_pretrained(folder)
            self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
        except (OSError, ValueError, ImportError) as error:
            raise UserError(f"{folder}: transformers could not load this model folder: {error}") from None
        self.tokenizer = self.processor.tokenizer
        self.model_dir = folder
        # Idefics3 takes fixed square tiles; other families handle any aspect ratio themselves.
        self.square_size = (self.model.config.vision_config.image_size
                            if self.model.config.model_type == "idefics3" else None)

    def prepare(self, request: VlmRequest) -> dict:
        """The exact model inputs for a request (also what the ONNX parity check feeds)."""
        check_images(request.images, "images")
        images = list(request.images)
        if self.square_size is not None:
            images = [square_image(image, self.square_size) for image in images]
        messages = chat_messages(request, [{"type": "image"} for _ in images])
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return dict(self.processor(text=text, images=[images], return_tensors="pt"))

    def generate_ids(self, inputs: dict, max_new_tokens: int, streamer=None, ignore_eos: bool = False) -> list[int]:
        """Greedy ids after the prompt; `ignore_eos` decodes the full budget (benchmarks)."""
        import torch

        extra = {"min_new_tokens": max_new_tokens} if ignore_eos else {}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                         num_beams=1, streamer=streamer, **extra)
        return output[0, inputs["input_ids"].shape[1]:].tolist()

    def generate_logits(self, inputs: dict, max_new_tokens: int, ignore_eos: bool = False):
        """Greedy ids and each step's raw logits as float32 numpy [steps, vocab] (parity checks)."""
        import torch

        extra = {"min_new_tokens": max_new_tokens} if ignore_eos else {}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                         output_logits=True, return_dict_in_generate=True, **extra)
        ids = output.sequences[0, inputs["input_ids"].shape[1]:].tolist()
        return ids, torch.stack(output.logits)[:, 0].float().numpy()

    def eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}

    def stream(self, request: VlmRequest) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self.prepare(request)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.generate_ids(inputs, request.max_new_tokens, streamer=streamer)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(error)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise failure[0]

    def generate(self, request: VlmRequest) -> Generation:
        clock = DecodeClock()
        inputs = self.prepare(request)
        streamer = ClockStreamer(clock)
        ids = self.generate_ids(inputs, request.max_new_tokens, streamer=streamer)
        eos = self.eos_ids()
        stop = "eos" if ids and ids[-1] in eos else "budget"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Generation(text=text, new_tokens=len(ids), stop=stop, **clock.seconds())


class ClockStreamer:
    """A transformers streamer that only timestamps tokens (the first `put` is the prompt)."""

    def __init__(self, clock: DecodeClock):
        self.clock = clock
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.clock.token()

    def end(self) -> None:
        return None
