"""A loopback server speaking the OpenAI chat-completions API, for the HTTP backend's tests.

By default it answers with a real local backend (the tiny random model) run on the images it
decoded from the request's base64 parts; tests can queue scripted answers first (an HTTP error,
a delay, a fixed text) to exercise retries, timeouts and parsing of known output.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from vigil360.models.vlm.interfaces import VlmRequest


@dataclass
class Scripted:
    status: int = 200
    text: str | None = None
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)


@dataclass
class ServerState:
    backend: object
    script: list[Scripted] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def decode_data_url(url: str) -> np.ndarray:
    if not url.startswith("data:image/") or ";base64," not in url:
        raise HTTPException(400, f"image_url must be a base64 data URL, got {url[:40]!r}")
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise HTTPException(400, "undecodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_request(body: dict) -> VlmRequest:
    system, user, images = "", "", []
    for message in body["messages"]:
        for part in message["content"]:
            if part["type"] == "text":
                if message["role"] == "system":
                    system += part["text"]
                else:
                    user += part["text"]
            elif part["type"] == "image_url":
                images.append(decode_data_url(part["image_url"]["url"]))
            else:
                raise HTTPException(400, f"unknown content part {part['type']!r}")
    return VlmRequest(images=images, system=system, user=user, max_new_tokens=int(body.get("max_tokens", 64)))


def make_app(state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        with state.lock:
            state.requests.append({"body": body, "headers": dict(request.headers)})
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            scripted = state.script.pop(0) if state.script else None
        try:
            if not isinstance(body.get("messages"), list) or "model" not in body:
                raise HTTPException(400, "model and messages are required")
            if scripted is not None:
                await asyncio.sleep(scripted.delay_s)
                if scripted.status != 200:
                    return JSONResponse({"error": {"message": "scripted failure"}}, scripted.status,
                                        headers=scripted.headers)
            vlm_request = to_request(body)
            if scripted is not None and scripted.text is not None:
                text, finish, tokens = scripted.text, "stop", None
            else:
                generation = await asyncio.to_thread(state.backend.generate, vlm_request)
                text, tokens = generation.text, generation.new_tokens
                finish = "length" if generation.stop == "budget" else "stop"
        finally:
            with state.lock:
                state.in_flight -= 1
        if body.get("stream"):
            def events():
                for piece in [text[i:i + 3] for i in range(0, len(text), 3)]:
                    yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}}]})}\n\n"
                yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        usage = {"completion_tokens": tokens} if tokens is not None else None
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}

    return app


class LoopbackServer:
    def __init__(self, state: ServerState):
        self.state = state
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(make_app(state), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("loopback server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
