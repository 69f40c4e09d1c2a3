"""The FastAPI app that serves a running loop, assembled from one router per concern.

`create_app(loop, options)` registers the hub as one of the loop's sinks and, unless told not
to, runs the loop in a background thread for the app's lifetime. The routes live in
`routes_status` (health, status, metrics), `routes_events` (the WebSocket), `routes_preview`,
`routes_config` (settings, repeat) and `routes_page`; they read the served loop from
`context.Served` on the app's state.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vigil360.edge.server import routes_config, routes_events, routes_page, routes_preview, routes_status
from vigil360.edge.server.context import Served, validation_reasons
from vigil360.edge.server.hub import EventHub
from vigil360.edge.server.loop_runner import LoopRunner
from vigil360.edge.server.options import ServerOptions
from vigil360.edge.server.protocol import ServableLoop
from vigil360.edge.server.routes_status import API_VERSION
from vigil360.edge.server.security import LOOPBACK_NAMES, GuardMiddleware, check_binding, check_origins, is_loopback

__all__ = ["API_VERSION", "LoopRunner", "ServerOptions", "create_app"]


def create_app(loop: ServableLoop, options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    check_binding(options.host, options.token)
    check_origins(options.allowed_origins)
    hub = EventHub(client_queue=options.client_queue, max_clients=options.max_event_clients)
    runner = LoopRunner(loop)
    loop.add_sink(hub.publish)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        hub.attach(asyncio.get_running_loop())
        batches = asyncio.create_task(hub.tick(options.batch_period_s))
        if options.run_loop:
            runner.start()
        try:
            yield
        finally:
            runner.stop()
            batches.cancel()
            hub.detach()

    app = FastAPI(
        title="vigil360 edge server",
        version=API_VERSION,
        description="Serves the on-device loop: live status, metrics, events, preview and settings.\n"
                    + routes_events.EVENTS_DOC,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.state.served = Served(loop=loop, runner=runner, hub=hub, options=options)
    app.state.hub, app.state.runner, app.state.options = hub, runner, options
    _guard(app, options)
    for module in (routes_page, routes_status, routes_events, routes_preview, routes_config):
        app.include_router(module.router)
    return app


def _guard(app: FastAPI, options: ServerOptions) -> None:
    # Loopback servers answer only to loopback Host names (DNS rebinding); a token-protected public
    # server answers to any.
    allowed_hosts = (*LOOPBACK_NAMES, options.host.strip("[]")) if is_loopback(options.host) else None
    app.add_middleware(GuardMiddleware, allowed_hosts=allowed_hosts, allowed_origins=options.allowed_origins,
                       max_body_bytes=options.max_body_bytes)
    if options.allowed_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.allowed_origins),
                           allow_methods=["GET", "PUT", "POST"], allow_headers=["Authorization", "Content-Type"])


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_reasons(error.errors())}, status_code=422)
