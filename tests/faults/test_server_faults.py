"""The server facing hostile or confused clients, and a loop that failed."""

from __future__ import annotations

import json
import math
import socket
import threading
import typing

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vigil360 import cli
from vigil360.config import Settings
from vigil360.edge.loop import EdgeLoop
from vigil360.edge.server import running
from vigil360.edge.server.app import ServerOptions, create_app
from vigil360.edge.server.running import BackgroundServer
from vigil360.errors import UserError


def _client(loop, host: str = "127.0.0.1", **options) -> TestClient:
    app = create_app(loop, ServerOptions(host=host, run_loop=False, **options))
    return TestClient(app, base_url=f"http://{host}:8360")


@pytest.fixture
def edge_loop(blank_source, scripted_perception) -> EdgeLoop:
    return EdgeLoop(blank_source(30), Settings(), perception=scripted_perception())


def test_every_response_refuses_framing_and_sniffing(edge_loop):
    with _client(edge_loop) as client:
        for path in ("/", "/healthz", "/v1/status", "/static/app.js"):
            headers = client.get(path).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"
        assert client.get("/").headers["content-security-policy"].startswith("default-src 'self'")
        assert "frame-ancestors 'none'" in client.get("/docs").headers["content-security-policy"]


def test_head_and_options_answer_like_a_web_server(edge_loop):
    with _client(edge_loop) as client:
        head = client.head("/")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-type"].startswith("text/html")
        assert client.head("/healthz").status_code == 200
        options = client.options("/v1/config")
        assert options.status_code == 204 and "PUT" in options.headers["allow"]


def test_reading_the_config_never_writes_it(edge_loop):
    calls = []
    real = edge_loop.update_settings
    edge_loop.update_settings = lambda patch: calls.append(patch) or real(patch)
    with _client(edge_loop) as client:
        assert client.get("/v1/config").json()["speech"]["muted"] is False
        assert calls == []


def test_a_change_made_during_another_change_is_not_lost(edge_loop, monkeypatch):
    """A mute must survive a concurrent change of another setting (read-modify-write under a lock)."""
    inside, release = threading.Event(), threading.Event()
    real_validate = Settings.model_validate.__func__

    def slow_validate(cls, data, *args, **kwargs):
        if threading.current_thread().name == "verbosity-change":
            inside.set()
            release.wait(timeout=30)
        return real_validate(cls, data, *args, **kwargs)

    monkeypatch.setattr(Settings, "model_validate", classmethod(slow_validate))
    first = threading.Thread(target=edge_loop.update_settings, args=({"speech": {"verbosity": "verbose"}},),
                             name="verbosity-change")
    first.start()
    assert inside.wait(timeout=30)
    mute = threading.Thread(target=edge_loop.update_settings, args=({"speech": {"muted": True}},))
    mute.start()
    mute.join(timeout=0.5)  # with the lock it waits for the first change; without, it is done by now
    release.set()
    first.join(timeout=30)
    mute.join(timeout=30)
    assert edge_loop.settings.speech.muted and edge_loop.settings.speech.verbosity == "verbose"


@pytest.mark.parametrize("body", [b'{"speech": {"cooldown_s": 1e400}}', b'{"speech": {"min_risk": NaN}}',
                                  b'{"speech": {"stale_after_s": Infinity}}', b'{"speech": {"cooldown_s": 1e9}}'])
def test_non_finite_and_huge_numbers_are_refused_not_stored(edge_loop, body):
    with _client(edge_loop) as client:
        answer = client.put("/v1/config", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert client.get("/v1/config").json()["speech"] == Settings().speech.model_dump(mode="json")


def test_a_settings_file_with_infinity_is_refused(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"loop": {"stats_period_s": 1e400}}')
    with pytest.raises(UserError, match="stats_period_s"):
        Settings.from_file(path)


def _numeric_settings(model=Settings, prefix: str = ""):
    """(dotted name, field) of every int/float setting, however deeply nested or optional."""
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _numeric_settings(field.annotation, f"{prefix}{name}.")
        elif {int, float} & {field.annotation, *typing.get_args(field.annotation)}:
            yield prefix + name, field


def _with(path: str, value) -> dict:
    document: dict = {}
    *sections, name = path.split(".")
    inner = document
    for section in sections:
        inner = inner.setdefault(section, {})
    inner[name] = value
    return document


NUMERIC_SETTINGS = dict(_numeric_settings())


def test_the_settings_walk_sees_every_section():
    sections = {name.split(".")[0] for name in NUMERIC_SETTINGS}
    assert {"camera", "reflex", "speech", "loop"} <= sections and len(NUMERIC_SETTINGS) > 40


@pytest.mark.parametrize("path", sorted(NUMERIC_SETTINGS))
def test_every_numeric_setting_has_a_finite_upper_bound_and_refuses_non_finite_values(path, tmp_path):
    """A field added without a bound fails here: huge or infinite values must be refused, not stored."""
    import annotated_types

    bounds = [m.le if isinstance(m, annotated_types.Le) else m.lt for m in NUMERIC_SETTINGS[path].metadata
              if isinstance(m, annotated_types.Le | annotated_types.Lt)]
    assert bounds and all(math.isfinite(bound) for bound in bounds), f"{path} has no finite upper bound"
    for value in (math.inf, -math.inf, math.nan, 10 * max(bounds) + 1):
        with pytest.raises(ValidationError):
            Settings.model_validate(_with(path, value))
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(_with(path, 0)).replace(": 0", ": 1e400"))  # JSON's way to write infinity
    with pytest.raises(UserError, match=path.split(".")[-1]):
        Settings.from_file(file)


def test_a_failed_loop_makes_healthz_503(blank_source):
    class Broken:
        def process(self, image, time_s):
            raise ZeroDivisionError("bad frame")

    loop = EdgeLoop(blank_source(5), Settings(), perception=Broken())
    app = create_app(loop, ServerOptions())
    with TestClient(app, base_url="http://127.0.0.1:8360") as client:
        assert app.state.runner.wait(timeout=30)
        health = client.get("/healthz")
        assert health.status_code == 503 and "bad frame" in health.json()["loop_error"]
        assert client.get("/v1/status").json()["loop"]["state"] == "failed"


def test_an_ended_source_is_not_reported_ok(edge_loop):
    app = create_app(edge_loop, ServerOptions())
    with TestClient(app, base_url="http://127.0.0.1:8360") as client:
        assert app.state.runner.wait(timeout=30)
        assert client.get("/healthz").json()["status"] == "ended"


def test_the_bound_loopback_host_is_allowed_and_wildcard_origins_are_refused(edge_loop):
    with _client(edge_loop, host="127.0.0.2") as client:
        assert client.get("/healthz").status_code == 200
    for origin in ("*", "null", "https://*.example.org"):
        with pytest.raises(UserError, match="exact web origin"):
            create_app(edge_loop, ServerOptions(allowed_origins=(origin,), run_loop=False))


def test_port_in_use_is_said_before_any_banner(blank_video, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit):
            cli.main(["serve", str(blank_video), "--port", str(port), "--no-speech"])
    printed = capsys.readouterr()
    assert "cannot listen" in printed.err and "serving" not in printed.out


def test_the_banner_prints_the_page_url_with_its_token(blank_video, capsys, monkeypatch):
    token = "banner-token-0123456789abcdef"
    monkeypatch.setattr(running, "serve_forever", lambda app, sock, host, port: sock.close())
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", str(blank_video), "--port", str(port), "--no-speech", "--token", token])
    assert exit_.value.code in (0, None)
    assert f"/#token={token}" in capsys.readouterr().out


def test_a_client_that_never_finishes_its_header_is_cut_off(edge_loop):
    app = create_app(edge_loop, ServerOptions(run_loop=False))
    with BackgroundServer(app, header_timeout_s=0.3) as server, socket.create_connection(
            (server.host, server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        sock.settimeout(30)
        assert sock.recv(1024) == b"", "the server closed the connection"


def test_shutdown_closes_websockets_with_1001_and_a_reason(edge_loop):
    app = create_app(edge_loop, ServerOptions(run_loop=False))
    server = BackgroundServer(app).__enter__()
    with connect(f"{server.ws_url}/v1/events") as ws:
        server.__exit__(None, None, None)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")


def test_metrics_counters_are_totals(edge_loop):
    with _client(edge_loop) as client:
        edge_loop.run()
        lines = client.get("/metrics").text.splitlines()
        assert "# TYPE vigil360_loop_alerts_total counter" in lines
        assert not any(line.startswith("vigil360_loop_frames ") for line in lines)
        assert json.loads(client.get("/v1/status").text)["loop"]["alerts"] == 3


def _refusal(url: str, **connect_options) -> tuple[int, str, str | None]:
    """Connect, expect nothing but a close, and return (code, reason, the subprotocol agreed)."""
    with connect(url, **connect_options) as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=30)
    return ws.close_code, ws.close_reason, ws.subprotocol


@pytest.mark.parametrize(("query", "headers", "expected"), [
    ("", {"origin": "http://attacker.example"}, (1008, "cross-origin request refused")),
    ("", {"host": "rebound.example"}, (1008, "unexpected Host header for this server")),  # DNS rebinding
    ("", {}, (1008, "token required")),
    ("?token=wrong-token-0123456789abc", {}, (1008, "wrong token")),
    ("?types=gossip&token=right-token-0123456789abc", {}, (1008, "types must be a comma-separated subset of "
                                                                "alert,track,caption,stats,health")),
])
def test_every_websocket_refusal_says_why_after_the_handshake(edge_loop, query, headers, expected):
    """A refused handshake is a bare HTTP 403 a browser never shows: the client must get a reason."""
    app = create_app(edge_loop, ServerOptions(token="right-token-0123456789abc", run_loop=False))
    with BackgroundServer(app) as server:
        # A name other than the server's own reaches it through a socket opened to the server.
        headers = dict(headers)
        host = headers.pop("host", f"{server.host}:{server.port}")
        code, reason, subprotocol = _refusal(f"ws://{host}/v1/events{query}", additional_headers=headers,
                                             subprotocols=["vigil360.v1"],
                                             sock=socket.create_connection((server.host, server.port)))
    assert (code, reason) == expected
    assert subprotocol == "vigil360.v1", "a browser fails a handshake that ignores the subprotocol it offered"


def test_a_client_over_the_limit_is_told_the_server_is_busy(edge_loop):
    app = create_app(edge_loop, ServerOptions(max_event_clients=1, run_loop=False))
    with BackgroundServer(app) as server, connect(f"{server.ws_url}/v1/events") as first:
        code, reason, _ = _refusal(f"{server.ws_url}/v1/events")
        assert code == 1013 and "server busy" in reason and "limit 1" in reason
        assert app.state.hub.stats().clients[0].id == 1
        first.close()
