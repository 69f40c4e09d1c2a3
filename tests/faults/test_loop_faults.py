"""Loop faults that used to be collected and never told: a failing event client, a stuck close."""

from __future__ import annotations

import pytest

from vigil360.config import Settings
from vigil360.edge.events import AlertEvent, HealthEvent
from vigil360.edge.loop import EdgeLoop


def test_a_failing_event_client_is_reported_and_the_others_still_get_every_alert(blank_source, scripted_perception):
    loop = EdgeLoop(blank_source(60), Settings(), perception=scripted_perception())

    def broken(event) -> None:
        if isinstance(event, AlertEvent):
            raise ConnectionResetError("client went away")

    events: list = []
    loop.add_sink(broken)
    loop.add_sink(events.append)
    summary = loop.run()
    assert len([e for e in events if isinstance(e, AlertEvent)]) == summary.alerts == 6
    (fault,) = [f for f in summary.faults if f.component == "events"]
    assert fault.count == 6 and "ConnectionResetError: client went away" in fault.message
    assert any(isinstance(e, HealthEvent) and e.component == "events" for e in events)


def test_a_source_that_cannot_close_in_time_is_reported(blank_source, scripted_perception):
    source = blank_source(20)

    def stuck_close() -> None:
        source.close_problem = "camera 0: a read was still blocked 2 s after close"

    source.close = stuck_close
    loop = EdgeLoop(source, Settings(), perception=scripted_perception())
    events: list = []
    loop.add_sink(events.append)
    summary = loop.run()
    (fault,) = [f for f in summary.faults if f.component == "shutdown"]
    assert "still blocked" in fault.message
    shutdown = [e for e in events if isinstance(e, HealthEvent) and e.component == "shutdown"]
    assert shutdown and events[-1].component == "loop"


def test_an_unexpected_error_marks_the_loop_failed(blank_source):
    class Broken:
        def process(self, image, time_s):
            raise ZeroDivisionError("bad frame")

    loop = EdgeLoop(blank_source(5), Settings(), perception=Broken())
    events: list = []
    loop.add_sink(events.append)
    with pytest.raises(ZeroDivisionError):
        loop.run()
    assert loop.status().state == "failed" and "bad frame" in loop.status().error
    assert loop.summary is not None and loop.summary.error
    assert events[-1].component == "loop" and events[-1].state == "failed"
