"""Binding rules and token checks, as tables."""

from __future__ import annotations

import pytest

from vigil360.edge.server.security import (
    check_binding,
    is_loopback,
    offered_token,
    origin_allowed,
    token_matches,
)
from vigil360.errors import UserError

TOKEN = "s3cret-token-of-24-chars"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "token", "error"),
    [
        ("127.0.0.1", None, None),
        ("127.0.0.1", TOKEN, None),
        ("0.0.0.0", TOKEN, None),
        ("0.0.0.0", None, "needs a token"),
        ("192.168.1.10", None, "needs a token"),
        ("0.0.0.0", "short", "too short"),
    ],
)
def test_check_binding(host: str, token: str | None, error: str | None) -> None:
    if error is None:
        check_binding(host, token)
    else:
        with pytest.raises(UserError, match=error):
            check_binding(host, token)


def _scope(**headers: str) -> dict:
    return {
        "type": "http",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.parametrize(
    ("scope", "query", "offered"),
    [
        (_scope(authorization=f"Bearer {TOKEN}"), None, TOKEN),
        (_scope(authorization=f"bearer {TOKEN}"), None, TOKEN),
        (_scope(sec_websocket_protocol=f"vigil360.v1, bearer.{TOKEN}"), None, TOKEN),
        (_scope(), TOKEN, TOKEN),
        (_scope(authorization="Basic abc"), None, None),
        (_scope(), None, None),
    ],
)
def test_offered_token(scope: dict, query: str | None, offered: str | None) -> None:
    assert offered_token(scope, query) == offered


@pytest.mark.parametrize(
    ("offered", "ok"), [(TOKEN, True), (TOKEN[:-1], False), (TOKEN + "x", False), ("", False), (None, False)]
)
def test_token_matches(offered: str | None, ok: bool) -> None:
    assert token_matches(TOKEN, offered) is ok


@pytest.mark.parametrize(
    ("headers", "allowed", "ok"),
    [
        ({}, (), True),
        ({"host": "127.0.0.1:8360", "origin": "http://127.0.0.1:8360"}, (), True),
        ({"host": "127.0.0.1:8360", "origin": "http://evil.example"}, (), False),
        ({"host": "127.0.0.1:8360", "origin": "http://evil.example"}, ("http://evil.example",), True),
        ({"host": "127.0.0.1:8360", "origin": "null"}, (), False),
    ],
)
def test_origin_allowed(headers: dict, allowed: tuple, ok: bool) -> None:
    assert origin_allowed(_scope(**headers), allowed) is ok
