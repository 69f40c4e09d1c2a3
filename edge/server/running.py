"""Run the app with uvicorn: in the foreground (`vigil360 serve`) or on a thread (tests, load bench)."""

from __future__ import annotations

import socket
import threading
from collections import deque

import uvicorn
from fastapi import FastAPI

from vigil360.errors import UserError

# Clients send nothing big: a small frame cap keeps a misbehaving client from costing memory.
_WS_MAX_MESSAGE_BYTES = 64 * 1024
# Linux grows a socket's send buffer to megabytes for a peer that stopped reading; thousands of
# stale events would sit there before the hub saw any pressure. A fixed buffer (inherited by
# accepted connections) keeps what a stalled client can hold small, so it is noticed in time.
SEND_BUFFER_BYTES = 64 * 1024
# The same reasoning one level up: asyncio buffers 64 KiB per connection before it pushes back.
WS_WRITE_BUFFER_BYTES = 16 * 1024
# A client has this long from connecting to sending its whole request head.
HEADER_TIMEOUT_S = 10.0
# Connections (and requests in flight) served at once; beyond it uvicorn answers 503. A wearer's
# server has a handful of clients: a few phones, a dashboard.
MAX_CONNECTIONS = 64


def _bounded_ws_protocol(write_buffer_bytes: int) -> type:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
        """Bounded writes, a 1001 on shutdown, and delivery measured with pings (`DeliveryProbe`)."""

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            # Past this, uvicorn's send waits: the pressure reaches the hub's per-client queue.
            transport.set_write_buffer_limits(high=write_buffer_bytes)
            self.delivery = DeliveryProbe(self)

        def handle_connect(self, event) -> None:
            super().handle_connect(event)
            if getattr(self, "scope", None) is not None:
                self.scope.setdefault("extensions", {})[DeliveryProbe.EXTENSION] = self.delivery

        async def send(self, message) -> None:
            await super().send(message)
            if message["type"] == "websocket.send" and not self.close_sent:
                self.delivery.sent()

        def handle_pong(self, event) -> None:
            if not self.delivery.pong(bytes(event.data)):
                super().handle_pong(event)

        def shutdown(self) -> None:
            # uvicorn says 1012 ("service restart") with no reason; this server is going away.
            if self.handshake_complete and not self.close_sent:
                self.stop_keepalive()
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
                self.conn.send_close(1001, "server shutting down")
                self.close_sent = True
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.transport.close()
                return
            super().shutdown()

    return BoundedWebSocketProtocol


class DeliveryProbe:
    """How far behind a WebSocket client is, measured at the client, not at the server's socket.

    A client that reads slowly hides its backlog in its own receive buffer (megabytes on Linux):
    the server's writes succeed while alerts arrive many seconds late. A ping written after a
    message is answered only once the client has read that message, so after each send a probe
    ping goes out (one at a time) and its pong marks everything sent before it as read. `lag_s`
    is the age of the oldest message sent and not yet known to be read.
    """

    EXTENSION = "vigil360.delivery"

    def __init__(self, protocol) -> None:
        self._protocol = protocol
        self._unread: deque[tuple[int, float]] = deque()  # (message number, time sent)
        self._sent = 0
        self._probe: tuple[bytes, int] | None = None  # (payload, last message it covers)

    def sent(self) -> None:
        self._sent += 1
        self._unread.append((self._sent, self._protocol.loop.time()))
        if self._probe is None:
            self._ping()

    def _ping(self) -> None:
        payload = b"vigil360-%d" % self._sent
        self._probe = (payload, self._sent)
        conn = self._protocol.conn
        conn.send_ping(payload)
        self._protocol.transport.write(b"".join(conn.data_to_send()))

    def pong(self, payload: bytes) -> bool:
        """True when `payload` answers this probe's ping (else it is uvicorn's keepalive)."""
        if self._probe is None or payload != self._probe[0]:
            return False
        covered = self._probe[1]
        while self._unread and self._unread[0][0] <= covered:
            self._unread.popleft()
        self._probe = None
        if self._unread and not self._protocol.close_sent:
            self._ping()
        return True

    def lag_s(self) -> float:
        return self._protocol.loop.time() - self._unread[0][1] if self._unread else 0.0


def _header_timeout_protocol(header_timeout_s: float) -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        """Closes a connection that has not sent a whole request head within the timeout: 300
        connections trickling a header a byte at a time would otherwise stay open for ever."""

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timed_out)

        def _head_timed_out(self) -> None:
            if self.cycle is None and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def listening_socket(host: str, port: int, send_buffer_bytes: int = SEND_BUFFER_BYTES) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind((host.strip("[]"), port))
    return sock


def _config(app: FastAPI, host: str, port: int, write_buffer_bytes: int = WS_WRITE_BUFFER_BYTES,
            header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          http=_header_timeout_protocol(header_timeout_s), limit_concurrency=max_connections,
                          ws=_bounded_ws_protocol(write_buffer_bytes),
                          ws_max_size=_WS_MAX_MESSAGE_BYTES, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                          timeout_graceful_shutdown=3, lifespan="on")


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening, or a clear error (a port in use, a wrong address)."""
    try:
        sock = listening_socket(host, port)
        sock.listen(128)
        return sock
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def serve_forever(app: FastAPI, sock: socket.socket, host: str, port: int) -> None:
    uvicorn.Server(_config(app, host, port)).run(sockets=[sock])


class _ReportingServer(uvicorn.Server):
    """Sets `settled` once it has started, or failed to: a caller waits on it instead of polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = threading.Event()

    def run(self, sockets=None) -> None:
        try:
            super().run(sockets=sockets)
        finally:
            self.settled.set()

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.settled.set()


class BackgroundServer:
    """uvicorn on a daemon thread, on a port the OS picks (loopback unless told otherwise).

    `with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")`
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", start_timeout_s: float = 20.0,
                 send_buffer_bytes: int = SEND_BUFFER_BYTES, write_buffer_bytes: int = WS_WRITE_BUFFER_BYTES,
                 header_timeout_s: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        self._socket = listening_socket(host, 0, send_buffer_bytes)
        self.host, self.port = host, self._socket.getsockname()[1]
        self._server = _ReportingServer(_config(app, host, self.port, write_buffer_bytes, header_timeout_s,
                                                max_connections))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="vigil360-server", daemon=True)
        self._start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        if not self._server.settled.wait(self._start_timeout_s) or not self._server.started:
            raise RuntimeError("the server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
