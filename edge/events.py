"""What the loop emits: typed, versioned events shared by speech, the recorder and the server.

These are the loop's output boundary. The server publishes them as JSON (and their JSON
Schema at /v1/events.schema.json); a companion app can rely on `schema_version`.
Every event carries the frame's own time (`frame_time_s`, video clock) and the wall-clock
time it was emitted (`emit_time`, Unix seconds), so latency is measurable end to end.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from vigil360.schema import RLE, AngleBox, Caption, Role

EVENT_SCHEMA_VERSION = "1.0"

Tier = Literal["reflex", "vlm"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = EVENT_SCHEMA_VERSION
    frame_index: int = Field(ge=0)
    frame_time_s: float = Field(ge=0, description="time of the frame in the source's clock")
    emit_time: float = Field(default_factory=time.time, description="Unix time the event was emitted")
    seq: int | None = Field(None, ge=1, description="the server's number for this event (one sequence for all "
                                                    "types); reconnect with ?since=<seq> to get what was missed")


class AlertEvent(_Event):
    """Something the wearer should hear now: who + what + whom + where."""

    type: Literal["alert"] = "alert"
    entity_id: str
    role: Role = "perpetrator"
    whom: str = Field("you", description="who is affected: 'you' (the wearer) or another entity's id")
    sentence: str = Field(description="the spoken-ready sentence")
    appearance: str = ""
    motion: str = ""
    clock_hour: int = Field(ge=1, le=12)
    yaw: float
    pitch: float
    distance_m: float | None = Field(None, description="None when the distance cannot be estimated")
    distance_sigma_m: float | None = None
    risk: float = Field(ge=0, le=1)
    reason: str = ""
    urgent: bool = False
    tier: Tier = "reflex"


class TrackEvent(_Event):
    type: Literal["track"] = "track"
    entity_id: str
    box: AngleBox
    distance_m: float | None = None
    risk: float = Field(0.0, ge=0, le=1)
    flagged: bool = False
    mask: RLE | None = Field(None, description="equirectangular mask, when the client asked for masks")


class CaptionEvent(_Event):
    """A refined description for an entity that was already announced (arrives later)."""

    type: Literal["caption"] = "caption"
    entity_id: str
    caption: Caption
    sentence: str | None = None
    tier: Tier = "vlm"


class StageLatency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p50_ms: float
    p95_ms: float
    count: int


class StatsEvent(_Event):
    type: Literal["stats"] = "stats"
    fps: float
    frames: int
    dropped_frames: int = 0
    stages: dict[str, StageLatency] = Field(default_factory=dict)


HealthState = Literal["running", "degraded", "failed", "ended", "stopped"]


class HealthEvent(_Event):
    """A part of the loop changed state (speech, recording, a model stage, event clients), or the
    loop itself ended, stopped or failed. `component` "loop" is the loop itself."""

    type: Literal["health"] = "health"
    component: str
    state: HealthState
    message: str = ""


Event = Annotated[AlertEvent | TrackEvent | CaptionEvent | StatsEvent | HealthEvent, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_json_schema() -> dict:
    """The published JSON Schema of every event (a discriminated union on `type`)."""
    return EVENT_ADAPTER.json_schema()
