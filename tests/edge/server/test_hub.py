"""The hub's backpressure rules, without a network: per-client bounded queues in event order."""

from __future__ import annotations

import asyncio
import json

import pytest

from vigil360.edge.events import AlertEvent, CaptionEvent, StatsEvent, TrackEvent
from vigil360.edge.server.hub import ClientLimitReached, EventHub, Subscription, pump
from vigil360.schema import AngleBox


def track(index: int, entity: str = "e0", mask: bool = False) -> TrackEvent:
    return TrackEvent(
        frame_index=index,
        frame_time_s=index / 30,
        entity_id=entity,
        box=AngleBox(yaw=0.0, pitch=0.0, width=10.0, height=20.0),
        mask={"size": [2, 4], "counts": "8"} if mask else None,  # one run of 8 zeros
    )


def alert(index: int) -> AlertEvent:
    return AlertEvent(
        frame_index=index,
        frame_time_s=index / 30,
        entity_id="e0",
        sentence="s",
        clock_hour=6,
        yaw=180.0 - 1,
        pitch=0.0,
        risk=0.9,
    )


def stats(index: int) -> StatsEvent:
    return StatsEvent(frame_index=index, frame_time_s=index / 30, fps=30.0, frames=index)


async def _attached(hub: EventHub) -> None:
    hub.attach(asyncio.get_running_loop())


async def _settle(hub: EventHub) -> None:
    # Alerts are fanned out by a call_soon_threadsafe callback (a turn or two of the loop); track and
    # stats events by the server's periodic tick, which these tests replace with an explicit flush.
    for _ in range(3):
        await asyncio.sleep(0)
    hub.flush()


def test_slow_client_loses_oldest_track_events_keeps_alerts_in_order() -> None:
    async def scenario():
        hub = EventHub(client_queue=4)
        await _attached(hub)
        slow = hub.connect(Subscription(track_hz=0.0 + 1000))
        for event in (track(0), alert(1), track(2), stats(3), track(4), alert(5)):
            hub.publish(event)
        await _settle(hub)
        texts = await slow.take()
        return [json.loads(t) for t in texts], dict(slow.dropped), slow.closed

    received, dropped, closed = asyncio.run(scenario())
    # 6 events into a queue of 4: the two oldest droppable ones (track 0, track 2) went first.
    assert [(e["type"], e["frame_index"]) for e in received] == [
        ("alert", 1),
        ("stats", 3),
        ("track", 4),
        ("alert", 5),
    ]
    assert dropped == {"track": 2}
    assert not closed


def test_client_that_cannot_take_alerts_is_closed_with_a_reason() -> None:
    async def scenario():
        hub = EventHub(client_queue=3)
        await _attached(hub)
        client = hub.connect(Subscription())
        for index in range(5):
            hub.publish(alert(index))
        await _settle(hub)
        return client, hub

    client, hub = asyncio.run(scenario())
    assert client.closed and client.close_kind == "slow_client"
    assert "too slow" in client.close_reason and "limit 3" in client.close_reason
    hub.disconnect(client)
    assert hub.stats().disconnects == {"slow_client": 1}


def test_publish_stays_cheap_with_clients_that_never_read() -> None:
    async def scenario():
        hub = EventHub(client_queue=64, max_clients=50)
        await _attached(hub)
        for _ in range(50):
            hub.connect(Subscription(track_hz=1000.0))
        untouched = 0
        for index in range(2000):
            queued = [client.queued for client in hub.stats().clients]
            hub.publish(track(index, entity=f"e{index % 5}"))
            # The loop's call only hands the event over: no client queue is touched on its thread.
            untouched += queued == [client.queued for client in hub.stats().clients]
            if index % 100 == 0:
                await _settle(hub)
        await _settle(hub)
        return hub, untouched

    hub, untouched = asyncio.run(scenario())
    # The loop-side cost does not depend on the clients (fan-out runs on the server's thread): counted,
    # not timed, so a loaded machine cannot make this flaky (timing lives in `bench serve-load`).
    assert untouched == 2000
    stats_ = hub.stats()
    assert all(client.queued == 64 for client in stats_.clients)
    assert stats_.dropped["track"] == 50 * (2000 - 64)


def test_track_rate_masks_and_types_follow_the_subscription() -> None:
    async def scenario():
        hub = EventHub()
        await _attached(hub)
        slow_rate = hub.connect(Subscription(track_hz=10.0))
        with_masks = hub.connect(Subscription(track_hz=1000.0, masks=True))
        alerts_only = hub.connect(Subscription(types=frozenset({"alert", "caption"})))
        for index in range(30):  # one second at 30 fps
            hub.publish(track(index, mask=True))
        hub.publish(
            CaptionEvent(
                frame_index=30,
                frame_time_s=1.0,
                entity_id="e0",
                caption={"appearance": "red coat", "motion": "runs"},
            )
        )
        await _settle(hub)
        return [[json.loads(t) for t in await c.take()] for c in (slow_rate, with_masks, alerts_only)]

    slow_rate, with_masks, alerts_only = asyncio.run(scenario())
    assert [e["frame_index"] for e in slow_rate if e["type"] == "track"] == [
        0,
        3,
        6,
        9,
        12,
        15,
        18,
        21,
        24,
        27,
    ]
    assert all(e["mask"] is None for e in slow_rate if e["type"] == "track")
    assert len([e for e in with_masks if e["type"] == "track"]) == 30
    assert all(e["mask"] == {"size": [2, 4], "counts": "8"} for e in with_masks if e["type"] == "track")
    assert [e["type"] for e in alerts_only] == ["caption"]


def test_recent_alerts_are_replayed_on_request() -> None:
    async def scenario():
        hub = EventHub(recent_alerts=3)
        await _attached(hub)
        for index in range(5):
            hub.publish(alert(index))
        await _settle(hub)
        client = hub.connect(Subscription(replay=2))
        return [json.loads(t)["frame_index"] for t in await client.take()]

    assert asyncio.run(scenario()) == [3, 4]


def test_stuck_send_times_out_and_closes_the_client() -> None:
    async def scenario():
        hub = EventHub()
        await _attached(hub)
        client = hub.connect(Subscription())
        hub.publish(alert(0))
        await _settle(hub)

        async def never_returns(_text: str) -> None:
            await asyncio.sleep(3600)

        await asyncio.wait_for(pump(client, never_returns, send_timeout_s=0.05), 5)
        return client

    client = asyncio.run(scenario())
    assert client.close_kind == "send_timeout" and "0.05 s" in client.close_reason


def test_events_before_the_server_starts_are_only_counted() -> None:
    hub = EventHub()
    hub.publish(alert(0))
    assert hub.stats().published == {"alert": 1}


@pytest.mark.parametrize("size", [0, -1])
def test_queue_sizes_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventHub(client_queue=size)


def test_alerts_are_delivered_without_waiting_for_the_batch_tick() -> None:
    async def scenario():
        hub = EventHub()
        await _attached(hub)
        client = hub.connect(Subscription())
        hub.publish(track(0))
        hub.publish(alert(1))
        for _ in range(3):
            await asyncio.sleep(0)
        # The alert woke the fan-out, and the earlier track event came with it, in order.
        return [json.loads(t)["type"] for t in await asyncio.wait_for(client.take(), 1)]

    assert asyncio.run(scenario()) == ["track", "alert"]


def test_a_client_over_the_limit_is_refused_with_a_reason_and_the_others_keep_their_place() -> None:
    hub = EventHub(max_clients=2)
    first, second = hub.connect(Subscription()), hub.connect(Subscription())
    with pytest.raises(ClientLimitReached, match="already 2 event clients"):
        hub.connect(Subscription())
    assert [client.id for client in hub.stats().clients] == [first.id, second.id]
    hub.disconnect(first)
    assert hub.connect(Subscription()).id == 3  # a place freed is a place offered
