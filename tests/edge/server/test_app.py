"""The HTTP and WebSocket API against a scripted loop (real event types, no models)."""

from __future__ import annotations

import json
import struct
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vigil360.edge.events import EVENT_ADAPTER
from vigil360.edge.server.app import ServerOptions, create_app
from vigil360.edge.server.running import BackgroundServer
from vigil360.errors import UserError

TOKEN = "test-token-0123456789abcdef"


def _client(loop, **options) -> TestClient:
    app = create_app(loop, ServerOptions(run_loop=False, **options))
    return TestClient(app, base_url="http://127.0.0.1:8360")


def test_health_status_metrics_and_schema(scripted_loop) -> None:
    with _client(scripted_loop) as client:
        scripted_loop.run()  # the whole script, on this thread: status then has frames and stages
        assert client.get("/healthz").json() == {"status": "ok", "loop_running": False, "loop_error": None}
        status = client.get("/v1/status").json()
        assert status["loop"]["frames"] == 60 and status["loop"]["stages"]["reflex"]["p95_ms"] == 2.0
        assert status["server"]["published"]["alert"] == 1
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = metrics.text.splitlines()
        assert "vigil360_loop_frames_total 60" in lines and "# TYPE vigil360_loop_frames_total counter" in lines
        assert 'vigil360_loop_stages_p95_ms{stage="reflex"} 2' in lines
        assert 'vigil360_events_published_total{type="track"} 120' in lines
        # Every family is declared once, before its samples.
        declared = [line.split()[2] for line in lines if line.startswith("# TYPE")]
        assert len(declared) == len(set(declared))
        schema = client.get("/v1/events.schema.json").json()
        assert set(schema["discriminator"]["mapping"]) == {"alert", "track", "caption", "stats", "health"}
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/healthz", "/v1/status", "/metrics", "/v1/config", "/v1/repeat", "/v1/frame.jpg"} <= set(
            paths
        )


def test_preview_config_and_repeat(scripted_loop) -> None:
    with _client(scripted_loop) as client:
        assert client.get("/v1/frame.jpg").status_code == 503
        assert client.post("/v1/repeat").status_code == 404
        scripted_loop.run()
        frame = client.get("/v1/frame.jpg", params={"width": 320})
        assert frame.headers["content-type"] == "image/jpeg" and frame.content[:2] == b"\xff\xd8"
        repeated = client.post("/v1/repeat").json()
        assert repeated["type"] == "alert" and repeated["entity_id"] == "e0"
        assert scripted_loop.repeats == 2

        assert client.get("/v1/config").json()["speech"]["muted"] is False
        changed = client.put("/v1/config", json={"speech": {"muted": True, "verbosity": "minimal"}})
        assert changed.status_code == 200 and changed.json()["speech"]["muted"] is True
        assert scripted_loop.settings.speech.verbosity == "minimal"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"speech": {"verbosity": "chatty"}}, "speech.verbosity"),
        ({"speech": {"min_risk": 2}}, "speech.min_risk"),
        ({"speech": {"mute": True}}, "speech.mute"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_config_is_rejected_with_422_and_a_reason(scripted_loop, patch: dict, reason: str) -> None:
    with _client(scripted_loop) as client:
        response = client.put("/v1/config", json=patch)
        assert response.status_code == 422
        assert any(".".join(map(str, d["loc"])).endswith(reason) for d in response.json()["detail"]), response.json()
        assert client.get("/v1/config").json()["speech"]["verbosity"] == "normal"


def test_request_limits_host_and_origin_checks(scripted_loop) -> None:
    with _client(scripted_loop, max_body_bytes=1024) as client:
        big = {"speech": {"voice": "x" * 5000}}
        assert client.put("/v1/config", json=big).status_code == 413
        # A chunked body without Content-Length is capped too.
        chunks = iter([b'{"speech": {"voice": "', b"x" * 4000, b'"}}'])
        assert (
            client.put("/v1/config", content=chunks, headers={"content-type": "application/json"}).status_code
            == 413
        )
        assert client.get("/v1/status", headers={"host": "attacker.example"}).status_code == 421
        foreign = client.post("/v1/repeat", headers={"origin": "http://attacker.example"})
        assert foreign.status_code == 403
        assert (
            "access-control-allow-origin"
            not in client.get("/v1/status", headers={"origin": "http://a.example"}).headers
        )
        assert client.get("/static/../app.py").status_code == 404
        assert client.get("/static/style.css").status_code == 200


def test_cors_only_for_origins_allowed_explicitly(scripted_loop) -> None:
    with _client(scripted_loop, allowed_origins=("http://companion.example",)) as client:
        allowed = client.get("/v1/status", headers={"origin": "http://companion.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://companion.example"
        assert client.post("/v1/repeat", headers={"origin": "http://companion.example"}).status_code == 404
        assert client.post("/v1/repeat", headers={"origin": "http://other.example"}).status_code == 403


def test_token_is_required_when_configured(scripted_loop) -> None:
    with _client(scripted_loop, token=TOKEN) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/v1/status", "/metrics", "/v1/config", "/v1/frame.jpg"):
            assert client.get(path).status_code == 401, path
            assert (
                client.get(path, headers={"authorization": "Bearer wrong-token-000000000"}).status_code == 401
            )
        assert client.get("/v1/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/v1/status", params={"token": TOKEN}).status_code == 200


def test_off_loopback_needs_a_token(scripted_loop) -> None:
    with pytest.raises(UserError, match="needs a token"):
        create_app(scripted_loop, ServerOptions(host="0.0.0.0"))
    app = create_app(scripted_loop, ServerOptions(host="0.0.0.0", token=TOKEN, run_loop=False))
    with TestClient(app, base_url="http://192.168.1.5:8360") as client:
        assert client.get("/v1/status").status_code == 401
        assert client.get("/v1/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def _receive_all(ws, until_type: str = "stats", limit: int = 500, timeout: float = 10.0) -> list[dict]:
    events, deadline = [], time.monotonic() + timeout
    while len(events) < limit and time.monotonic() < deadline:
        try:
            events.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except TimeoutError:
            break
        if events[-1]["type"] == until_type and events[-1]["frame_index"] >= 59:
            break
    return events


def test_websocket_streams_every_event_in_order_with_the_schema(make_scripted_loop) -> None:
    loop = make_scripted_loop(frames=60, fps=200.0)
    app = create_app(loop, ServerOptions(run_loop=False))
    with (
        BackgroundServer(app) as server,
        connect(f"{server.ws_url}/v1/events?track_hz=100", subprotocols=["vigil360.v1"]) as ws,
    ):
        assert ws.subprotocol == "vigil360.v1"
        app.state.runner.start()
        events = _receive_all(ws)
    parsed = [EVENT_ADAPTER.validate_python(event) for event in events]
    assert [e.type for e in parsed].count("track") == 120
    assert [e.type for e in parsed].count("alert") == 1 and [e.type for e in parsed].count("caption") == 1
    assert [e.frame_index for e in parsed] == sorted(e.frame_index for e in parsed)
    assert [e.emit_time for e in parsed] == sorted(e.emit_time for e in parsed)


def test_websocket_token_subprotocol_and_bad_parameters(make_scripted_loop) -> None:
    app = create_app(make_scripted_loop(frames=30, fps=300.0), ServerOptions(token=TOKEN, run_loop=False))
    with BackgroundServer(app) as server:
        with connect(f"{server.ws_url}/v1/events") as refused, pytest.raises(ConnectionClosed):
            refused.recv(timeout=10)
        assert (refused.close_code, refused.close_reason) == (1008, "token required")
        with connect(
            f"{server.ws_url}/v1/events?types=alert&replay=0", subprotocols=["vigil360.v1", f"bearer.{TOKEN}"]
        ) as ws:
            assert ws.subprotocol == "vigil360.v1"
        with connect(f"{server.ws_url}/v1/events?token={TOKEN}"):
            pass
        with connect(f"{server.ws_url}/v1/events?token={TOKEN}&types=gossip") as refused, \
                pytest.raises(ConnectionClosed):
            refused.recv(timeout=10)
        assert refused.close_code == 1008 and "types must be" in refused.close_reason
        with connect(f"{server.ws_url}/v1/events?token={TOKEN}", additional_headers={
                "origin": "http://attacker.example"}) as refused, pytest.raises(ConnectionClosed):
            refused.recv(timeout=10)
        assert (refused.close_code, refused.close_reason) == (1008, "cross-origin request refused")
        assert (
            httpx.get(f"{server.url}/v1/status", headers={"authorization": f"Bearer {TOKEN}"}).status_code
            == 200
        )


def test_a_client_too_slow_for_alerts_is_closed_with_a_reason(make_scripted_loop, raw_ws, hub_watch) -> None:
    loop = make_scripted_loop(frames=400, fps=400.0, alert_every=1)
    app = create_app(loop, ServerOptions(run_loop=False, client_queue=4))
    with BackgroundServer(app, send_buffer_bytes=4096, write_buffer_bytes=4096) as server:
        sock = raw_ws.stalled_client(f"{server.ws_url}/v1/events?types=alert")
        watch = hub_watch(app.state.hub)
        app.state.runner.start()
        assert watch.wait_for(lambda hub: hub.disconnected == 1, timeout=60), \
            "the server never gave up on a client that stopped reading"
        assert app.state.hub.stats().disconnects == {"slow_client": 1}
        # Reading again, the client finds the alerts it had, then the reason it was closed.
        frames = raw_ws.read_frames(sock, timeout=5.0)
        sock.close()
    texts = [json.loads(payload) for opcode, payload in frames if opcode == 0x1]
    assert texts and all(event["type"] == "alert" for event in texts)
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes, "no close frame"
    code, reason = struct.unpack(">H", closes[0][:2])[0], closes[0][2:].decode()
    assert code == 1013 and "too slow" in reason, (code, reason)


def test_mjpeg_preview_streams_jpeg_parts(make_scripted_loop) -> None:
    loop = make_scripted_loop(frames=5)
    app = create_app(loop, ServerOptions(run_loop=False))
    loop.run()
    with BackgroundServer(app) as server, httpx.stream("GET", f"{server.url}/v1/preview.mjpeg?fps=10",
                                                       timeout=10) as response:
        assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        head = b""
        for chunk in response.iter_bytes():
            head += chunk
            if b"\xff\xd8" in head:
                break
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n")
