"""`vigil360 serve`: refuses unsafe bindings before touching the source; serves until stopped."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from vigil360.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "needs a token"),
    (["--host", "0.0.0.0", "--token", "short"], "too short"),
])
def test_serve_refuses_unsafe_bindings(args: list[str], message: str, capsys, monkeypatch) -> None:
    monkeypatch.delenv("VIGIL360_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "/nonexistent.mp4", *args])
    assert exit_.value.code == 1
    assert message in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)  # the process closed its output


def _wait_for_line(lines: queue.Queue, seen: list[str], text: str, timeout: float) -> None:
    """Read the process's output until a line contains `text` (or it ends, or time is up)."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {text!r} within {timeout:g} s; output so far: {''.join(seen)}") from None
        assert line is not None, f"the process ended before saying {text!r}: {''.join(seen)}"
        seen.append(line)


def test_serve_command_serves_a_video(synthetic_clip_files) -> None:
    port = _free_port()
    env = {**os.environ, "VIGIL360_TOKEN": "cli-test-token-0123456789"}
    process = subprocess.Popen([sys.executable, "-m", "vigil360", "serve", str(synthetic_clip_files.video),
                                "--port", str(port), "--no-speech"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        # The socket listens before the banner is printed: from then on a request waits in its
        # backlog until the app answers, so no polling is needed.
        _wait_for_line(lines, seen, "serving video file", timeout=120)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=60).status_code == 401
        status = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=60,
                           headers={"authorization": f"Bearer {env['VIGIL360_TOKEN']}"})
        assert status.json()["loop"]["source"].endswith(synthetic_clip_files.video.name)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(timeout=30)
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    output = "".join(seen)
    assert "serving video file" in output and "token required" in output
