"""Fan the loop's events out to WebSocket clients without ever letting a client slow the loop.

The loop calls `EventHub.publish` on its own thread; that call only appends to one bounded
ingress deque under a lock; an alert or caption also schedules a fan-out on the server's asyncio
thread at once, while track and stats events are fanned out in batches every few milliseconds.
The fan-out copies each event into every client's own bounded queue. Under pressure a client
loses its oldest track/stats events (counted); alerts and captions are never dropped: a client
whose queue is full of them is disconnected with a reason instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from vigil360.edge.events import AlertEvent, TrackEvent

EVENT_TYPES: tuple[str, ...] = ("alert", "track", "caption", "stats", "health")
# Events whose loss only makes a picture less smooth; everything else must be delivered or the
# client told why not.
DROPPABLE_TYPES = frozenset({"track", "stats"})


class ClientLimitReached(Exception):
    """The hub already serves as many clients as it may; the message says so for the client."""


@dataclass(frozen=True)
class Subscription:
    """What one client asked for (query parameters of /v1/events)."""

    types: frozenset[str] = frozenset(EVENT_TYPES)
    track_hz: float = 5.0  # per entity, in the video clock; 0 = no track events
    masks: bool = False
    replay: int = 0  # recent alerts to send first
    since: int | None = None  # resume: every retained alert/caption/health event after this seq first


class Outgoing:
    """One event, serialised at most once per variant however many clients receive it."""

    __slots__ = ("event", "type", "_json", "_json_no_mask")

    def __init__(self, event) -> None:
        self.event = event
        self.type: str = event.type
        self._json: str | None = None
        self._json_no_mask: str | None = None

    def text(self, masks: bool) -> str:
        if masks or not isinstance(self.event, TrackEvent) or self.event.mask is None:
            if self._json is None:
                self._json = self.event.model_dump_json()
            return self._json
        if self._json_no_mask is None:
            self._json_no_mask = self.event.model_copy(update={"mask": None}).model_dump_json()
        return self._json_no_mask


class ClientStats(BaseModel):
    id: int
    queued: int
    sent: int
    lag_s: float = Field(0.0, description="age of the oldest message sent to the client and not yet read by it")
    dropped: dict[str, int] = Field(description="events dropped oldest-first, by type")
    subscription: dict


class HubStats(BaseModel):
    clients: list[ClientStats]
    published: dict[str, int] = Field(description="events the loop emitted, by type")
    dropped: dict[str, int] = Field(description="events dropped for slow clients (all clients), by type")
    disconnects: dict[str, int] = Field(description="clients the server closed, by reason kind")
    sent: int
    ingress_overflows: int
    publish_max_us: float = Field(description="longest time the loop spent inside the hub's sink")


@dataclass
class Client:
    id: int
    subscription: Subscription
    max_queue: int
    queue: deque[Outgoing] = field(default_factory=deque)
    dropped: Counter = field(default_factory=Counter)
    sent: int = 0
    close_reason: str | None = None
    close_kind: str | None = None
    lag_s: float = 0.0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)
    _last_track: dict[str, float] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def close(self, kind: str, reason: str) -> None:
        if self.close_reason is None:
            self.close_kind, self.close_reason = kind, reason
            self.queue.clear()
        self.wakeup.set()
        self.closed_event.set()

    def wants(self, message: Outgoing) -> bool:
        sub = self.subscription
        if message.type not in sub.types:
            return False
        if message.type != "track":
            return True
        if sub.track_hz <= 0:
            return False
        event: TrackEvent = message.event
        last = self._last_track.get(event.entity_id)
        # A little slack so a 30 fps stream asked for at 10 Hz gives every third frame, not every fourth.
        if last is not None and 0 <= event.frame_time_s - last < 0.95 / sub.track_hz:
            return False
        self._last_track[event.entity_id] = event.frame_time_s
        return True

    def offer(self, message: Outgoing) -> None:
        if self.closed or not self.wants(message):
            return
        if len(self.queue) >= self.max_queue and not self._drop_oldest_droppable():
            if message.type in DROPPABLE_TYPES:
                self.dropped[message.type] += 1
                return
            self.close("slow_client", f"client too slow: {len(self.queue)} alert/caption events "
                                      f"waiting (limit {self.max_queue})")
            return
        self.queue.append(message)
        self.wakeup.set()

    def _drop_oldest_droppable(self) -> bool:
        for index, queued in enumerate(self.queue):
            if queued.type in DROPPABLE_TYPES:
                del self.queue[index]
                self.dropped[queued.type] += 1
                return True
        return False

    async def take(self) -> list[str]:
        """Wait for queued events and return their JSON texts; empty once the client is closed."""
        while not self.queue and not self.closed:
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.closed:
            return []
        masks = self.subscription.masks
        batch = [message.text(masks) for message in self.queue]
        self.queue.clear()
        return batch

    def stats(self) -> ClientStats:
        sub = self.subscription
        return ClientStats(
            id=self.id, queued=len(self.queue), sent=self.sent, lag_s=round(self.lag_s, 3), dropped=dict(self.dropped),
            subscription={"types": sorted(sub.types), "track_hz": sub.track_hz, "masks": sub.masks},
        )


class EventHub:
    def __init__(self, *, client_queue: int = 256, ingress_limit: int = 4096, recent_alerts: int = 20,
                 history: int = 256, max_clients: int = 48) -> None:
        if client_queue < 1 or ingress_limit < 1 or max_clients < 1:
            raise ValueError("queue sizes and the client limit must be at least 1")
        self.client_queue = client_queue
        self.max_clients = max_clients
        self.ingress_limit = ingress_limit
        self._lock = threading.Lock()
        self._ingress: deque = deque()
        self._ingress_lost_reliable = 0
        self._scheduled = False
        self._aio: asyncio.AbstractEventLoop | None = None
        self._clients: dict[int, Client] = {}
        self._next_id = 1
        self._recent_alerts: deque[Outgoing] = deque(maxlen=recent_alerts)
        # Alerts, captions and health events kept for clients resuming with ?since=<seq>.
        self._history: deque[Outgoing] = deque(maxlen=history)
        self._seq = 0
        self.published: Counter = Counter()
        self.dropped: Counter = Counter()
        self.disconnects: Counter = Counter()
        self.sent = 0
        self.ingress_overflows = 0
        self.publish_max_us = 0.0
        self.last_event_time = 0.0

    # --- the loop's side (any thread) -------------------------------------------------------

    def publish(self, event) -> None:
        """The loop's sink: O(1), never blocks on a client."""
        start = time.perf_counter()
        with self._lock:
            self.published[event.type] += 1
            self.last_event_time = time.time()
            if self._aio is None:
                return
            if len(self._ingress) >= self.ingress_limit:
                self._evict_from_ingress()
            self._ingress.append(event)
            # Waking the server's thread hands it the interpreter lock right away, which stalls the
            # loop for milliseconds; so only alerts and captions wake it. Track and stats events wait
            # for the next `batch_period_s` tick.
            urgent = event.type not in DROPPABLE_TYPES
            aio = None if self._scheduled or not urgent else self._aio
            self._scheduled = self._scheduled or urgent
        if aio is not None:
            # RuntimeError: the server's event loop has just closed; nobody is left to deliver to.
            with contextlib.suppress(RuntimeError):
                aio.call_soon_threadsafe(self.flush)
        self.publish_max_us = max(self.publish_max_us, (time.perf_counter() - start) * 1e6)

    def _evict_from_ingress(self) -> None:
        # Only reached when the server thread has stalled for thousands of events.
        self.ingress_overflows += 1
        for index, queued in enumerate(self._ingress):
            if queued.type in DROPPABLE_TYPES:
                del self._ingress[index]
                self.dropped[queued.type] += 1
                return
        self._ingress_lost_reliable += len(self._ingress)
        self._ingress.clear()

    # --- the server's side (its asyncio thread) ---------------------------------------------

    def attach(self, aio: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._aio = aio

    def detach(self) -> None:
        with self._lock:
            self._aio = None
            self._ingress.clear()
            self._scheduled = False
        for client in list(self._clients.values()):
            client.close("shutdown", "server shutting down")

    async def tick(self, batch_period_s: float) -> None:
        """Deliver batched track/stats events every `batch_period_s` (runs for the server's life)."""
        while True:
            await asyncio.sleep(batch_period_s)
            if self._ingress:
                self.flush()

    def flush(self) -> None:
        """Hand everything published so far to the clients' queues (on the server's thread)."""
        with self._lock:
            events = list(self._ingress)
            self._ingress.clear()
            self._scheduled = False
            lost, self._ingress_lost_reliable = self._ingress_lost_reliable, 0
        if lost:
            for client in self._clients.values():
                client.close("server_overflow", f"server fell behind: {lost} alert/caption events lost")
        for event in events:
            self._seq += 1
            message = Outgoing(event.model_copy(update={"seq": self._seq}))
            if isinstance(event, AlertEvent):
                self._recent_alerts.append(message)
            if message.type not in DROPPABLE_TYPES:
                self._history.append(message)
            for client in self._clients.values():
                client.offer(message)

    def connect(self, subscription: Subscription) -> Client:
        if len(self._clients) >= self.max_clients:
            raise ClientLimitReached(f"server busy: already {len(self._clients)} event clients (limit "
                                     f"{self.max_clients}); try again later")
        client = Client(id=self._next_id, subscription=subscription, max_queue=self.client_queue)
        self._next_id += 1
        if subscription.since is not None:
            for message in self._history:
                if message.event.seq > subscription.since:
                    client.offer(message)
        elif subscription.replay and "alert" in subscription.types:
            for message in list(self._recent_alerts)[-subscription.replay:]:
                client.offer(message)
        self._clients[client.id] = client
        return client

    def disconnect(self, client: Client) -> None:
        if self._clients.pop(client.id, None) is None:
            return
        self.sent += client.sent
        for kind, count in client.dropped.items():
            self.dropped[kind] += count
        if client.close_kind is not None:
            self.disconnects[client.close_kind] += 1

    def stats(self) -> HubStats:
        clients = list(self._clients.values())
        dropped = self.dropped.copy()
        for client in clients:
            dropped.update(client.dropped)
        return HubStats(
            clients=[client.stats() for client in clients],
            published=dict(self.published), dropped=dict(dropped), disconnects=dict(self.disconnects),
            sent=self.sent + sum(client.sent for client in clients),
            ingress_overflows=self.ingress_overflows, publish_max_us=round(self.publish_max_us, 1),
        )


async def pump(client: Client, send: Callable[[str], Awaitable[None]], send_timeout_s: float) -> None:
    """Send a client's queued events in order until it is closed; a stuck send closes it."""
    while True:
        batch = await client.take()
        if not batch:
            return
        for text in batch:
            try:
                await asyncio.wait_for(send(text), send_timeout_s)
            except TimeoutError:
                client.close("send_timeout", f"send timed out after {send_timeout_s:g} s")
                return
            except Exception:  # noqa: BLE001 - the client went away mid-send; its handler notices
                return
            client.sent += 1
