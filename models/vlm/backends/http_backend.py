"""An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, Ollama, or a hosted model).

For a phone-tethered or off-device setup. Images travel as base64 data URLs in `image_url` parts.
Timeouts are explicit; connection errors, timeouts, 429 and 5xx answers are retried a bounded
number of times with exponential backoff (honouring a short Retry-After); other 4xx answers are
not retried, since asking again cannot fix them. A semaphore caps requests in flight, so a
burst of captions cannot swamp a small local server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator

import numpy as np

from vigil360.errors import UserError
from vigil360.models.vlm.interfaces import Generation, VlmRequest, check_images
from vigil360.models.vlm.prompts import chat_messages

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HttpBackendError(UserError):
    """The endpoint could not be reached or refused the request; the message says which and why."""


def encode_image(image: np.ndarray, image_format: str = "jpeg", quality: int = 90, max_side: int | None = None) -> str:
    """An RGB array as a `data:` URL (JPEG or PNG), downscaled so its longer side is <= max_side."""
    import cv2

    if max_side is not None and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if image_format == "png":
        ok, data = cv2.imencode(".png", bgr)
    elif image_format == "jpeg":
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        raise UserError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    if not ok:
        raise UserError(f"could not encode a {image.shape} image as {image_format}")
    mime = "png" if image_format == "png" else "jpeg"
    return f"data:image/{mime};base64,{base64.b64encode(data.tobytes()).decode('ascii')}"


class HttpBackend:
    name = "http"

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout_s: float = 30.0,
                 connect_timeout_s: float = 3.0, max_retries: int = 2, backoff_s: float = 0.5,
                 max_concurrency: int = 2, image_format: str = "jpeg", max_image_side: int | None = 768,
                 extra_body: dict | None = None):
        import httpx

        if max_retries < 0 or max_concurrency < 1:
            raise UserError("http backend: max_retries must be >= 0 and max_concurrency >= 1")
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise UserError(f"http backend: environment variable {api_key_env} (the API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.image_format = image_format
        self.max_image_side = max_image_side
        self.extra_body = extra_body or {}
        self._slots = threading.BoundedSemaphore(max_concurrency)
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client = httpx.Client(timeout=timeout, headers=headers,
                                    limits=httpx.Limits(max_connections=max_concurrency))

    def close(self) -> None:
        self._client.close()

    def body(self, request: VlmRequest, stream: bool) -> dict:
        check_images(request.images, "images")
        parts = [{"type": "image_url", "image_url": {"url": encode_image(image, self.image_format,
                                                                          max_side=self.max_image_side)}}
                 for image in request.images]
        return {"model": self.model, "messages": chat_messages(request, parts), "max_tokens": request.max_new_tokens,
                "temperature": 0.0, "stream": stream, **self.extra_body}

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * 2**attempt
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP-date Retry-After: keep our own delay
                delay = max(delay, min(float(retry_after), 4 * self.backoff_s * 2**self.max_retries))
        time.sleep(delay)

    def _send(self, body: dict, stream: bool):
        """The response (open, when streaming) of the first attempt that succeeds."""
        import httpx

        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                request = self._client.build_request("POST", self.url, json=body)
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                detail = response.text[:300]
                response.close()
                last = f"HTTP {response.status_code}: {detail}"
                if response.status_code not in _RETRY_STATUS:
                    raise HttpBackendError(f"{self.url} refused the request ({last})")
                retry_after = response.headers.get("retry-after")
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        raise HttpBackendError(f"{self.url}: no answer after {self.max_retries + 1} attempts ({last})")

    def generate(self, request: VlmRequest) -> Generation:
        start = time.perf_counter()
        body = self.body(request, stream=False)
        with self._slots:
            response = self._send(body, stream=False)
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise HttpBackendError(f"{self.url}: not an OpenAI chat completion ({error!r}): "
                                   f"{response.text[:200]}") from None
        usage = payload.get("usage") or {}
        stop = "budget" if choice.get("finish_reason") == "length" else "eos"
        return Generation(text=text, new_tokens=usage.get("completion_tokens"), stop=stop,
                          total_s=time.perf_counter() - start)

    def stream(self, request: VlmRequest) -> Iterator[str]:
        body = self.body(request, stream=True)
        with self._slots:
            response = self._send(body, stream=True)
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        delta = json.loads(data)["choices"][0].get("delta", {})
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise HttpBackendError(f"{self.url}: malformed stream event {data[:120]!r}") from None
                    if delta.get("content"):
                        yield delta["content"]
            finally:
                response.close()
