"""A loopback server that answers like the OpenAI chat-completions API, for judge tests.

The reply depends on the reference caption, so a test picks a behaviour by its text:
- contains "MALFORMED": a prose reply, never JSON;
- contains "FLAKY": malformed on the first request for that pair, valid afterwards;
- contains "SLOW": sleeps `slow_s` before replying;
- contains "HTTP500": HTTP 500;
- contains "FENCED": valid JSON inside a ```json fence;
- otherwise: 5/5/5 when prediction == reference, else 1/2/3.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PAIR = re.compile(r"Reference caption: (.*)\nPredicted caption: (.*)\n")


class FakeJudgeServer:
    def __init__(self, slow_s: float = 1.0, delay_s: float = 0.0) -> None:
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, content = server.reply(body)
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                    ).encode()
                    try:
                        self.send_response(status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up (timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply(self, body: dict) -> tuple[int, str]:
        match = _PAIR.search(body["messages"][1]["content"])
        assert match is not None, "user message lacks the reference/prediction lines"
        reference, prediction = match.groups()
        with self._lock:
            first_time = (reference, prediction) not in self._seen
            self._seen.add((reference, prediction))
        if "HTTP500" in reference:
            return 500, "server error"
        if "SLOW" in reference:
            time.sleep(self.slow_s)
        if "MALFORMED" in reference or ("FLAKY" in reference and first_time):
            return 200, "Sure! The visual score is 4 and motion is fine."
        scores = (
            {"visual": 5, "motion": 5, "semantic": 5}
            if reference == prediction
            else {"visual": 1, "motion": 2, "semantic": 3}
        )
        text = json.dumps(scores)
        return 200, f"```json\n{text}\n```" if "FENCED" in reference else text

    def __enter__(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
