"""`vigil360 serve`: refuses unsafe bindings before touching the source; serves until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


def test_serve_command_serves_a_video(synthetic_clip_files) -> None:
    port = _free_port()
    env = {**os.environ, "VIGIL360_TOKEN": "cli-test-token-0123456789"}
    process = subprocess.Popen([sys.executable, "-m", "vigil360", "serve", str(synthetic_clip_files.video),
                                "--port", str(port), "--no-speech"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/status").status_code == 401
        status = httpx.get(f"http://127.0.0.1:{port}/v1/status", headers={"authorization":
                                                                            f"Bearer {env['VIGIL360_TOKEN']}"})
        assert status.json()["loop"]["source"].endswith(synthetic_clip_files.video.name)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "serving video file" in output and "token required" in output
