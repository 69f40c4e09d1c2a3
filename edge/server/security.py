"""Who may talk to the server: loopback by default, a token otherwise, nothing cross-origin.

- Binding to anything but loopback without a token refuses to start (`UserError`).
- The token is accepted as `Authorization: Bearer <t>`, `?token=<t>`, or (WebSockets, where a
  browser cannot set headers) the subprotocol `bearer.<t>` offered next to `vigil360.v1`; it
  is compared in constant time.
- On loopback, the Host header must name loopback too, so a web page on another site cannot
  reach the server through DNS rebinding; state-changing requests and WebSockets that carry a
  foreign Origin are refused (CORS stays closed unless origins are allowed explicitly). A refused
  WebSocket is accepted and closed at once with code 1008 and the reason, so a browser can show it.
- Request bodies are capped.
- Every response says it may not be framed (a framed page could be clicked into muting the
  wearer), must not be type-sniffed and leaks no referrer; the page itself may load only its own
  files (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from vigil360.errors import UserError

WS_SUBPROTOCOL = "vigil360.v1"
# WebSocket close codes (RFC 6455 section 7.4.1): refused by policy; the server is too busy for you.
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_PAGE_POLICY = (b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; "
                b"base-uri 'none'; form-action 'none'")
# FastAPI's interactive docs load their script from a CDN: they keep every rule but that one.
_DOCS_POLICY = b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve off loopback without a (long enough) token."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise UserError(f"the token is too short ({len(token)} characters); use at least {MIN_TOKEN_LENGTH}, "
                        "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
    if not is_loopback(host) and token is None:
        raise UserError(f"refusing to bind {host}: serving beyond loopback needs a token "
                        "(set VIGIL360_TOKEN or pass --token)")


def check_origins(origins: Iterable[str]) -> None:
    """Refuse wildcard or opaque origins: the API changes what the wearer hears."""
    for origin in origins:
        parts = urlsplit(origin)
        if origin.strip() in ("*", "null") or parts.scheme not in ("http", "https") or not parts.netloc \
                or "*" in origin:
            raise UserError(f"--allow-origin {origin!r}: give one exact web origin such as https://app.example.org "
                            "(wildcards would let any web page mute the wearer)")


def token_matches(expected: str, offered: str | None) -> bool:
    if offered is None:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def offered_subprotocols(scope: dict) -> list[str]:
    return [p.strip() for p in (_header(scope, b"sec-websocket-protocol") or "").split(",") if p.strip()]


def accepted_subprotocol(scope: dict) -> str | None:
    # A browser that offered subprotocols fails a handshake that picks none of them, and would then
    # never see the close reason.
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered_subprotocols(scope) else None


def offered_token(scope: dict, query_token: str | None) -> str | None:
    authorization = _header(scope, b"authorization")
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    for protocol in offered_subprotocols(scope):
        if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return protocol[len(TOKEN_SUBPROTOCOL_PREFIX):]
    return query_token


def host_allowed(scope: dict, allowed_hosts: Iterable[str] | None) -> bool:
    """None means any Host (token-protected public binding)."""
    if allowed_hosts is None:
        return True
    host = _header(scope, b"host")
    if host is None:
        return False
    name = urlsplit(f"//{host}").hostname or ""
    return name in allowed_hosts


def origin_allowed(scope: dict, allowed_origins: Iterable[str]) -> bool:
    """A request without Origin (curl, scripts) or from the page itself is fine."""
    origin = _header(scope, b"origin")
    if origin is None or origin in allowed_origins:
        return True
    host = _header(scope, b"host")
    return host is not None and urlsplit(origin).netloc == host


class GuardMiddleware:
    """Host and Origin checks and a body size cap, before any route runs (HTTP and WebSocket)."""

    def __init__(self, app, *, allowed_hosts: tuple[str, ...] | None, allowed_origins: tuple[str, ...],
                 max_body_bytes: int) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.allowed_origins = allowed_origins
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["type"] == "http":
            send = _with_security_headers(send, scope)
        if not host_allowed(scope, self.allowed_hosts):
            return await _refuse(scope, receive, send, 421, "unexpected Host header for this server")
        changes_state = scope["type"] == "websocket" or scope.get("method") not in ("GET", "HEAD", "OPTIONS")
        if changes_state and not origin_allowed(scope, self.allowed_origins):
            return await _refuse(scope, receive, send, 403, "cross-origin request refused")
        if scope["type"] == "http" and scope.get("method") == "HEAD" and not scope.get("path", "").endswith(".mjpeg"):
            # HEAD is GET without the body (the routes are declared for GET only).
            scope, send = {**scope, "method": "GET"}, _without_body(send)
        if scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD"):
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                return await _refuse(scope, receive, send, 413, f"request body over {self.max_body_bytes} bytes")
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


_HOST_SAFE = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")


def _page_policy(scope: dict) -> bytes:
    # 'self' covers ws:// of the same host only in CSP level 3 browsers: name it explicitly.
    host = _header(scope, b"host") or ""
    if not _HOST_SAFE.match(host):
        return _PAGE_POLICY
    return _PAGE_POLICY.replace(b"connect-src 'self'",
                                b"connect-src 'self' ws://" + host.encode() + b" wss://" + host.encode())


def _with_security_headers(send, scope: dict):
    path = scope.get("path", "")
    policy = _DOCS_POLICY if path.startswith(_DOCS_PATHS) else _page_policy(scope)

    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
            message = {**message, "headers": [*headers, *SECURITY_HEADERS, (b"content-security-policy", policy)]}
        await send(message)

    return wrapped


def _without_body(send):
    async def wrapped(message):
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return wrapped


async def _read_body(receive, limit: int) -> bytes | None:
    # Bodies here are small JSON documents: read them whole (chunked or not) and stop at the cap.
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def wrapped():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return wrapped


async def _refuse(scope, receive, send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting would answer the handshake with a bare HTTP 403 that browsers do
        # not show: accept, then close with the reason. Nothing is sent in between.
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept", "subprotocol": accepted_subprotocol(scope)})
        await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": reason})
        return
    body = json.dumps({"detail": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
