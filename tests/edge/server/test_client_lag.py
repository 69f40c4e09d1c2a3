"""Clients that fall behind: measured at the client (its own receive buffer hides the backlog),
closed early with a reason that still reaches them, and able to resume from the last `seq`."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vigil360.edge.events import AlertEvent
from vigil360.edge.server.app import ServerOptions, create_app
from vigil360.edge.server.hub import EventHub, Subscription
from vigil360.edge.server.running import BackgroundServer

MAX_LAG_S = 0.5


def _alert_counter(loop) -> tuple[threading.Condition, list[int]]:
    published, cond = [0], threading.Condition()

    def count(event) -> None:
        if event.type == "alert":
            with cond:
                published[0] += 1
                cond.notify_all()

    loop.add_sink(count)
    return cond, published


def test_a_slow_reader_is_closed_with_a_reason_and_a_fast_one_is_not(make_scripted_loop):
    # 10 alerts a second for 4 s; the slow client reads one message per 3 alerts published.
    loop = make_scripted_loop(frames=400, fps=100.0, alert_every=10)
    cond, published = _alert_counter(loop)
    app = create_app(loop, ServerOptions(run_loop=False, max_lag_s=MAX_LAG_S))
    with BackgroundServer(app) as server:
        url = f"{server.ws_url}/v1/events?types=alert"
        fast_got: list[dict] = []
        fast_connected = threading.Event()

        def fast_reader() -> None:
            with connect(url) as ws:
                fast_connected.set()
                for text in ws:
                    with cond:
                        fast_got.append(json.loads(text))
                        cond.notify_all()

        with connect(url, max_queue=2) as slow:
            fast = threading.Thread(target=fast_reader, daemon=True)
            fast.start()
            assert fast_connected.wait(timeout=30)
            app.state.runner.start()
            slow_got: list[dict] = []
            try:
                # One message read per three alerts published: the backlog grows with every alert.
                for wanted in range(3, 400, 3):
                    with cond:
                        assert cond.wait_for(lambda w=wanted: published[0] >= w, timeout=60), \
                            "the loop ended and the slow client was never closed"
                    slow_got.append(json.loads(slow.recv(timeout=30)))
            except ConnectionClosed:
                pass
            assert slow.close_code == 1013 and "behind" in slow.close_reason, (slow.close_code, slow.close_reason)
        stats = app.state.hub.stats()
        assert stats.disconnects.get("lagging") == 1
        seqs = [e["seq"] for e in slow_got]
        assert seqs == sorted(seqs) and slow_got, "in order, and what it did get carries seq"
        assert app.state.runner.wait(timeout=60)
        with cond:
            assert cond.wait_for(lambda: len(fast_got) == published[0], timeout=30), "the fast client got them all"
    fast.join(timeout=30)
    assert [e["seq"] for e in fast_got if e["type"] == "alert"], "the fast client kept receiving"
    assert len([e for e in fast_got if e["type"] == "alert"]) == published[0], "and was never closed"


def test_a_client_that_stops_reading_gets_the_close_frame_and_reason(make_scripted_loop, raw_ws):
    loop = make_scripted_loop(frames=300, fps=100.0, alert_every=10)
    app = create_app(loop, ServerOptions(run_loop=False, max_lag_s=MAX_LAG_S))
    with BackgroundServer(app) as server:
        sock = raw_ws.stalled_client(f"{server.ws_url}/v1/events?types=alert")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # a big buffer hides the backlog
        app.state.runner.start()
        assert app.state.runner.wait(timeout=60)
        frames = raw_ws.read_frames(sock, timeout=5.0)
        sock.close()
        assert app.state.hub.stats().disconnects == {"lagging": 1}
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes, "the close frame reached the client"
    code, reason = struct.unpack(">H", closes[0][:2])[0], closes[0][2:].decode()
    assert code == 1013 and "behind" in reason and "since" in reason


@pytest.mark.parametrize("since", [0, 2, 5])
def test_resume_from_seq_gets_every_alert_after_it(since):
    hub = EventHub()
    aio = asyncio.new_event_loop()
    try:
        hub.attach(aio)
        for index in range(5):
            hub.publish(AlertEvent(frame_index=index, frame_time_s=index / 30, entity_id="e0", sentence="s",
                                   clock_hour=6, yaw=179.0, pitch=0.0, risk=0.9))
        hub.flush()
        client = hub.connect(Subscription(since=since))
        assert [m.event.seq for m in client.queue] == list(range(since + 1, 6))
    finally:
        hub.detach()
        aio.close()
