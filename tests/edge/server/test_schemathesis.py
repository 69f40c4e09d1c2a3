"""Property-based API test: schemathesis generates requests from the served OpenAPI schema.

It runs against a live loopback server serving the real loop (already run over a short
synthetic clip, so every endpoint has something to return) and fails on any server error or
any response that does not match the schema, with every check schemathesis has (status codes,
content types, headers, negative data rejected, positive data accepted, Allow headers, ...).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from vigil360.edge.server.app import ServerOptions, create_app
from vigil360.edge.server.running import BackgroundServer

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (pip install schemathesis)")

# Endless by design (multipart/x-mixed-replace): checked by hand, not by a generator that reads to the end.
_STREAMING = "/v1/preview.mjpeg"


@pytest.fixture(scope="module")
def served(synthetic_clip, clip_source_class):
    from vigil360.edge.loop import EdgeLoop

    loop = EdgeLoop(clip_source_class(synthetic_clip))
    app = create_app(loop, ServerOptions(run_loop=False))
    loop.run()  # a finished run: status, preview and the last alert all exist
    with BackgroundServer(app) as server:
        yield server


def _all_checks() -> list:
    from schemathesis import checks

    checks.load_all_checks()
    return list(checks.CHECKS.get_all())


def test_api_conforms_to_its_schema(served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json").exclude(path=_STREAMING)
    every_check = _all_checks()
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case) -> None:
            case.call_and_validate(checks=every_check)

        conforms()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert {"GET /v1/status", "PUT /v1/config", "POST /v1/repeat", "GET /v1/frame.jpg"} <= set(tested), tested
