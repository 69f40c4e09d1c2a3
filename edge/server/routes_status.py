"""Is the loop alive and how is it doing: /healthz, /v1/status, /metrics, the events' schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from vigil360.edge.events import EVENT_SCHEMA_VERSION, event_json_schema
from vigil360.edge.server.context import GUARDED, UNAUTHORISED, Served, served
from vigil360.edge.server.hub import HubStats
from vigil360.edge.server.metrics import render_metrics

API_VERSION = "1.0"

router = APIRouter()


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


@router.get("/healthz", response_model=Health, tags=["health"],
            responses={503: {"model": Health, "description": "the loop failed: no alerts are being made"}})
def healthz(state: Served = Depends(served)) -> Health | JSONResponse:
    runner = state.runner
    loop_status = state.loop.status()
    failed = getattr(loop_status, "state", None) == "failed"
    error = runner.error or (getattr(loop_status, "error", None) or "the loop failed" if failed else None)
    if error is not None:
        body = Health(status="error", loop_running=runner.running, loop_error=error)
        return JSONResponse(body.model_dump(), status_code=503)
    ended = runner.started and not runner.running
    return Health(status="ended" if ended else "ok", loop_running=runner.running, loop_error=None)


@router.get("/v1/status", response_model=StatusResponse, dependencies=GUARDED, responses=UNAUTHORISED,
            tags=["status"])
def status(state: Served = Depends(served)) -> StatusResponse:
    return StatusResponse(loop=state.loop.status().model_dump(mode="json"), loop_error=state.runner.error,
                          server=state.hub.stats())


@router.get("/metrics", response_class=PlainTextResponse, dependencies=GUARDED, responses=UNAUTHORISED,
            tags=["status"])
def metrics(state: Served = Depends(served)) -> PlainTextResponse:
    """Prometheus text exposition format (version 0.0.4)."""
    text = render_metrics(state.loop.status().model_dump(mode="json"), state.hub.stats(),
                          loop_running=state.runner.running)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/events.schema.json", tags=["events"])
def events_schema() -> dict:
    """JSON Schema of every WebSocket event (a union discriminated by `type`)."""
    return event_json_schema()
