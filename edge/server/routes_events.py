"""WebSocket /v1/events: one client's subscription, its delivery, and every way it is refused or closed.

Every refusal is a close frame with a code and a reason after the handshake, never a refused
handshake: that is only an HTTP 403 which browsers do not show, and the page must say why.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from vigil360.edge.events import EVENT_SCHEMA_VERSION
from vigil360.edge.server.context import served
from vigil360.edge.server.hub import EVENT_TYPES, ClientLimitReached, Subscription, pump
from vigil360.edge.server.running import DeliveryProbe
from vigil360.edge.server.security import (
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    WS_SUBPROTOCOL,
    accepted_subprotocol,
    offered_token,
    token_matches,
)

router = APIRouter()

EVENTS_DOC = f"""
WebSocket `/v1/events` (subprotocol `{WS_SUBPROTOCOL}`): a stream of JSON text messages, one event each,
in the order the loop emitted them. Each is an `alert`, `track`, `caption` or `stats` event as published
at `/v1/events.schema.json` (schema version {EVENT_SCHEMA_VERSION}, field `schema_version`), carrying the
frame's time (`frame_time_s`) and the emit time (`emit_time`, Unix seconds).

Query parameters: `types` (comma-separated subset of {", ".join(EVENT_TYPES)}), `track_hz` (track events
per entity per second of video, 0 for none; default 5), `masks` (true to include track masks), `replay`
(0-20 recent alerts sent first), `since` (resume: every retained alert, caption and health event with a
larger `seq`, up to the last 256), `token`. Every event carries `seq`, the server's number for it.

Refusals complete the handshake and then close with a reason the client can read: code
{POLICY_VIOLATION} for a foreign Host or Origin, a missing ("token required") or wrong ("wrong token")
token and bad query parameters; code {TRY_AGAIN_LATER} when the server already serves its limit of
event clients.

Under pressure a client loses its oldest track/stats events (counted in `/v1/status`); alerts and captions
are never dropped: a client too slow for them, or more than a few seconds behind in reading them (measured
with pings at the client), is closed with code {TRY_AGAIN_LATER} and a reason, and may resume with `since`.
On shutdown clients are closed with code 1001 ("server shutting down").
"""


def parse_subscription(params) -> Subscription:
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


def _token_problem(websocket: WebSocket, expected: str | None) -> str | None:
    if expected is None:
        return None
    offered = offered_token(websocket.scope, websocket.query_params.get("token"))
    if token_matches(expected, offered):
        return None
    return "token required" if offered is None else "wrong token"


@router.websocket("/v1/events")
async def events(websocket: WebSocket) -> None:
    state = served(websocket)
    options, hub = state.options, state.hub
    await websocket.accept(subprotocol=accepted_subprotocol(websocket.scope))
    problem = _token_problem(websocket, options.token)
    if problem is not None:
        await websocket.close(code=POLICY_VIOLATION, reason=problem)
        return
    try:
        subscription = parse_subscription(websocket.query_params)
    except ValueError as error:
        await websocket.close(code=POLICY_VIOLATION, reason=str(error)[:120])
        return
    try:
        client = hub.connect(subscription)
    except ClientLimitReached as error:
        await websocket.close(code=TRY_AGAIN_LATER, reason=str(error)[:120])
        return
    await _serve_client(websocket, client, state)


async def _serve_client(websocket: WebSocket, client, state) -> None:
    options, hub = state.options, state.hub
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
        code = 1001 if client.close_kind == "shutdown" else TRY_AGAIN_LATER
        # A client that stopped reading may never take the close frame: wait for it no longer
        # than for any other send.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=code, reason=client.close_reason[:120]),
                                   options.send_timeout_s)


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
