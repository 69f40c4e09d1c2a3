"""The FastAPI app that serves a running loop: status, metrics, events, preview, config, repeat.

`create_app(loop, options)` registers the hub as one of the loop's sinks and, unless told not
to, runs the loop in a background thread for the app's lifetime. Nothing here reads or writes
a path chosen by a request: the page's three files are read once, from this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from vigil360.config import Settings
from vigil360.edge.events import EVENT_SCHEMA_VERSION, AlertEvent, event_json_schema
from vigil360.edge.loop import RUNTIME_SETTINGS
from vigil360.edge.server.hub import EVENT_TYPES, EventHub, HubStats, Subscription, pump
from vigil360.edge.server.metrics import render_metrics
from vigil360.edge.server.protocol import ServableLoop
from vigil360.edge.server.running import DeliveryProbe
from vigil360.edge.server.security import (
    LOOPBACK_NAMES,
    WS_SUBPROTOCOL,
    GuardMiddleware,
    check_binding,
    check_origins,
    is_loopback,
    offered_subprotocols,
    offered_token,
    token_matches,
)
from vigil360.errors import UserError

API_VERSION = "1.0"
_PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_SLOW_CLOSE_CODE = 1013  # "try again later": the server closed a client it could not keep up with


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8360
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    client_queue: int = 256
    send_timeout_s: float = 5.0
    batch_period_s: float = 0.02  # track/stats events reach clients within this; alerts at once
    preview_max_width: int = 960
    mjpeg_max_hz: float = 10.0
    # A client further behind than this (measured at the client: see running.DeliveryProbe) is
    # closed with a reason while the close frame still fits in its buffers; it may resume.
    max_lag_s: float = 3.0
    run_loop: bool = True


class LoopRunner:
    """Runs `loop.run` on a background thread and remembers how it ended."""

    def __init__(self, loop: ServableLoop) -> None:
        self.loop = loop
        self.stop_event = threading.Event()
        self.summary: Any = None
        self.error: str | None = None
        self.started = False
        self._thread = threading.Thread(target=self._run, name="vigil360-loop", daemon=True)

    def start(self) -> None:
        self.started = True
        self._thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.loop.run(self.stop_event)
        except Exception as error:  # noqa: BLE001 - reported by /healthz and /v1/status, not lost
            self.error = f"{type(error).__name__}: {error}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Wait for the loop to end by itself (a file source, a failure); True when it has."""
        if self.started:
            self._thread.join(timeout)
        return self.started and not self.running

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.started:
            self._thread.join(timeout)


class Health(BaseModel):
    status: str = Field(description="'ok'; 'ended' when the source ended or the loop was stopped; 'error' "
                                    "(HTTP 503) when the loop failed")
    loop_running: bool
    loop_error: str | None = None


class StatusResponse(BaseModel):
    api_version: str = API_VERSION
    event_schema_version: str = EVENT_SCHEMA_VERSION
    loop: dict[str, Any] = Field(description="the loop's own status: source, models and backends, fps, "
                                             "per-stage p50/p95 latency, frames, dropped frames, running")
    loop_error: str | None = None
    server: HubStats


class Problem(BaseModel):
    detail: Any


_EVENTS_DOC = f"""
WebSocket `/v1/events` (subprotocol `{WS_SUBPROTOCOL}`): a stream of JSON text messages, one event each,
in the order the loop emitted them. Each is an `alert`, `track`, `caption` or `stats` event as published
at `/v1/events.schema.json` (schema version {EVENT_SCHEMA_VERSION}, field `schema_version`), carrying the
frame's time (`frame_time_s`) and the emit time (`emit_time`, Unix seconds).

Query parameters: `types` (comma-separated subset of {", ".join(EVENT_TYPES)}), `track_hz` (track events
per entity per second of video, 0 for none; default 5), `masks` (true to include track masks), `replay`
(0-20 recent alerts sent first), `since` (resume: every retained alert, caption and health event with a
larger `seq`, up to the last 256), `token`. Every event carries `seq`, the server's number for it.

Under pressure a client loses its oldest track/stats events (counted in `/v1/status`); alerts and captions
are never dropped: a client too slow for them, or more than a few seconds behind in reading them (measured
with pings at the client), is closed with code {_SLOW_CLOSE_CODE} and a reason, and may resume with `since`.
"""


def _page_assets() -> dict[str, tuple[bytes, str]]:
    static = files("vigil360.edge.server").joinpath("static")
    return {name: (static.joinpath(name).read_bytes(), media) for name, media in _PAGE_FILES.items()}


def _parse_subscription(params) -> Subscription:
    unknown = set(params) - {"types", "track_hz", "masks", "replay", "since", "token"}
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    types = frozenset(t.strip() for t in params.get("types", ",".join(EVENT_TYPES)).split(",") if t.strip())
    if not types or not types <= set(EVENT_TYPES):
        raise ValueError(f"types must be a comma-separated subset of {','.join(EVENT_TYPES)}")
    try:
        track_hz = float(params.get("track_hz", 5.0))
        replay = int(params.get("replay", 0))
        since = int(params["since"]) if "since" in params else None
    except ValueError:
        raise ValueError("track_hz must be a number, replay and since integers") from None
    if since is not None and since < 0:
        raise ValueError("since must be a sequence number (0 or more)")
    if not 0 <= track_hz <= 120:
        raise ValueError("track_hz must be between 0 and 120")
    if not 0 <= replay <= 20:
        raise ValueError("replay must be between 0 and 20")
    masks = params.get("masks", "false").lower()
    if masks not in ("true", "false", "1", "0"):
        raise ValueError("masks must be true or false")
    return Subscription(types=types, track_hz=track_hz, masks=masks in ("true", "1"), replay=replay, since=since)


def _without_default(schema: dict) -> None:
    schema.pop("default", None)


def settings_patch_model(runtime: dict[str, set[str]]) -> type[BaseModel]:
    """A request model for the runtime-changeable part of `Settings`, derived from it: the same
    types, bounds and descriptions, every field optional, unknown keys refused."""
    strict = ConfigDict(extra="forbid", allow_inf_nan=False)
    sections: dict[str, Any] = {}
    for section, names in sorted(runtime.items()):
        section_model = Settings.model_fields[section].annotation
        fields: dict[str, Any] = {}
        for name in sorted(names):
            original = section_model.model_fields[name]
            annotation = Annotated[(original.annotation, *original.metadata)] if original.metadata \
                else original.annotation
            fields[name] = (annotation, Field(None, description=original.description,
                                              json_schema_extra=_without_default))
        patch = create_model(f"{section_model.__name__}Patch", __config__=strict, **fields)
        sections[section] = (patch, Field(None, json_schema_extra=_without_default))
    return create_model("SettingsPatch", __config__=strict, **sections)


SettingsPatch = settings_patch_model(RUNTIME_SETTINGS)


def create_app(loop: ServableLoop, options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    check_binding(options.host, options.token)
    check_origins(options.allowed_origins)
    hub = EventHub(client_queue=options.client_queue)
    runner = LoopRunner(loop)
    loop.add_sink(hub.publish)
    assets = _page_assets()

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
        description="Serves the on-device loop: live status, metrics, events, preview and settings.\n" + _EVENTS_DOC,
        lifespan=lifespan,
    )
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        # Without the offending input: it may be NaN or infinity, which JSON cannot carry.
        reasons = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return JSONResponse({"detail": reasons}, status_code=422)

    app.state.hub = hub
    app.state.runner = runner
    app.state.options = options
    # Loopback servers answer only to loopback Host names (DNS rebinding); a token-protected public
    # server answers to any.
    allowed_hosts = (*LOOPBACK_NAMES, options.host.strip("[]")) if is_loopback(options.host) else None
    app.add_middleware(GuardMiddleware, allowed_hosts=allowed_hosts, allowed_origins=options.allowed_origins,
                       max_body_bytes=options.max_body_bytes)
    if options.allowed_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.allowed_origins),
                           allow_methods=["GET", "PUT", "POST"], allow_headers=["Authorization", "Content-Type"])

    def authorised(request: Request) -> None:
        if options.token is None:
            return
        if not token_matches(options.token, offered_token(request.scope, request.query_params.get("token"))):
            raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]
    unauthorised = {401: {"model": Problem, "description": "a token is required and was missing or wrong"}}

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        body, media = assets["index.html"]
        return Response(body, media_type=media)

    @app.get("/static/{name}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        if name not in assets or name == "index.html":
            raise HTTPException(404, "no such asset")
        body, media = assets[name]
        return Response(body, media_type=media)

    @app.get("/healthz", response_model=Health, tags=["health"],
             responses={503: {"model": Health, "description": "the loop failed: no alerts are being made"}})
    def healthz() -> Health | JSONResponse:
        loop_status = loop.status()
        failed = getattr(loop_status, "state", None) == "failed"
        error = runner.error or (getattr(loop_status, "error", None) or "the loop failed" if failed else None)
        if error is not None:
            body = Health(status="error", loop_running=runner.running, loop_error=error)
            return JSONResponse(body.model_dump(), status_code=503)
        ended = runner.started and not runner.running
        return Health(status="ended" if ended else "ok", loop_running=runner.running, loop_error=None)

    @app.get("/v1/status", response_model=StatusResponse, dependencies=guarded, responses=unauthorised,
             tags=["status"])
    def status() -> StatusResponse:
        return StatusResponse(loop=loop.status().model_dump(mode="json"), loop_error=runner.error,
                              server=hub.stats())

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=guarded, responses=unauthorised,
             tags=["status"])
    def metrics() -> PlainTextResponse:
        """Prometheus text exposition format (version 0.0.4)."""
        text = render_metrics(loop.status().model_dump(mode="json"), hub.stats(), loop_running=runner.running)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/events.schema.json", tags=["events"])
    def events_schema() -> dict:
        """JSON Schema of every WebSocket event (a union discriminated by `type`)."""
        return event_json_schema()

    @app.websocket("/v1/events")
    async def events(websocket: WebSocket) -> None:
        offered = offered_subprotocols(websocket.scope)
        # Refusals are sent as close frames after the handshake: a refused handshake is only an
        # HTTP 403 that browsers do not show, and the page must say why ("wrong token").
        await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None)
        if options.token is not None:
            offered_value = offered_token(websocket.scope, websocket.query_params.get("token"))
            if not token_matches(options.token, offered_value):
                reason = "token required" if offered_value is None else "wrong token"
                await websocket.close(code=1008, reason=reason)
                return
        try:
            subscription = _parse_subscription(websocket.query_params)
        except ValueError as error:
            await websocket.close(code=1008, reason=str(error)[:120])
            return
        client = hub.connect(subscription)
        sender = asyncio.create_task(pump(client, websocket.send_text, options.send_timeout_s))
        listener = asyncio.create_task(_until_client_leaves(websocket))
        closed = asyncio.create_task(client.closed_event.wait())
        probe = websocket.scope.get("extensions", {}).get(DeliveryProbe.EXTENSION)
        watchdog = asyncio.create_task(_watch_lag(client, probe, options.max_lag_s))
        tasks = (sender, listener, closed, watchdog)
        try:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener_left = listener.done() and not listener.cancelled()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            hub.disconnect(client)
        if client.close_reason is not None and not listener_left:
            code = 1001 if client.close_kind == "shutdown" else _SLOW_CLOSE_CODE
            # A client that stopped reading may never take the close frame: wait for it no longer
            # than for any other send.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code=code, reason=client.close_reason[:120]),
                                       options.send_timeout_s)

    @app.get("/v1/frame.jpg", dependencies=guarded, tags=["preview"],
             responses={**unauthorised, 200: {"content": {"image/jpeg": {}}, "description": "JPEG image"},
                        503: {"model": Problem, "description": "no frame yet"}})
    async def frame_jpg(width: Annotated[int, Query(ge=64, le=3840)] = options.preview_max_width) -> Response:
        """The newest annotated equirectangular frame, downscaled to at most `width` pixels."""
        jpeg = await asyncio.to_thread(loop.latest_preview_jpeg, min(width, options.preview_max_width))
        if jpeg is None:
            return JSONResponse({"detail": "no frame yet"}, status_code=503, headers={"Retry-After": "1"})
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/v1/preview.mjpeg", dependencies=guarded, tags=["preview"],
             responses={**unauthorised, 200: {"content": {"multipart/x-mixed-replace; boundary=frame": {}},
                                               "description": "an endless MJPEG stream"}})
    async def preview_mjpeg(request: Request,
                            width: Annotated[int, Query(ge=64, le=3840)] = options.preview_max_width,
                            fps: Annotated[float, Query(gt=0, le=30)] = 5.0) -> StreamingResponse:
        """MJPEG preview of the annotated frame (for an <img> tag); at most `mjpeg_max_hz` frames/s."""
        period = 1.0 / min(fps, options.mjpeg_max_hz)
        width = min(width, options.preview_max_width)

        async def parts():
            last = None
            while not await request.is_disconnected():
                started = time.perf_counter()
                jpeg = await asyncio.to_thread(loop.latest_preview_jpeg, width)
                if jpeg is not None and jpeg != last:
                    last = jpeg
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                           + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame")

    @app.get("/v1/config", dependencies=guarded, responses=unauthorised, tags=["config"])
    def get_config() -> dict[str, Any]:
        """The loop's current settings (the `Settings` model; see `vigil360 config --schema`)."""
        return loop.settings.model_dump(mode="json")  # a read: it never writes the settings back

    @app.options("/v1/config", include_in_schema=False)
    def config_options() -> Response:
        return Response(status_code=204, headers={"Allow": "GET, HEAD, PUT, OPTIONS"})

    @app.put("/v1/config", dependencies=guarded, tags=["config"],
             responses={**unauthorised, 422: {"model": Problem, "description": "the change was rejected"}})
    def put_config(patch: SettingsPatch) -> dict[str, Any]:
        """Change runtime settings (a partial settings document, e.g. `{"speech": {"muted": true}}`);
        validated by the same pydantic model. Returns the new settings."""
        try:
            return loop.update_settings(patch.model_dump(exclude_unset=True)).model_dump(mode="json")
        except ValidationError as error:
            reasons = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
            return JSONResponse({"detail": reasons}, status_code=422)
        except (UserError, ValueError, TypeError) as error:
            return JSONResponse({"detail": str(error)}, status_code=422)

    @app.post("/v1/repeat", response_model=AlertEvent, dependencies=guarded, tags=["alerts"],
              responses={**unauthorised, 404: {"model": Problem, "description": "no alert yet"}})
    def repeat() -> AlertEvent | JSONResponse:
        """Say the last alert again; returns it."""
        alert = loop.repeat_last()
        if alert is None:
            return JSONResponse({"detail": "no alert yet"}, status_code=404)
        return alert

    return app


async def _watch_lag(client, probe, max_lag_s: float) -> None:
    """Close a client whose oldest unread message is older than `max_lag_s` (never, without a probe)."""
    if probe is None:  # a server without delivery probes (the test client): nothing to measure
        await asyncio.Event().wait()
    while not client.closed:
        await asyncio.sleep(min(0.25, max_lag_s / 4))
        client.lag_s = probe.lag_s()
        if client.lag_s > max_lag_s:
            client.close("lagging", f"client {client.lag_s:.1f} s behind (limit {max_lag_s:g} s); "
                                    "reconnect with ?since=<last seq> for what it missed")
            return


async def _until_client_leaves(websocket: WebSocket) -> None:
    # Clients have nothing to say on this socket; reading still notices when they go.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
