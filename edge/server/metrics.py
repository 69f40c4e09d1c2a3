"""Prometheus text exposition (format 0.0.4) of the loop's status and the server's counters.

The loop's status is flattened generically (numbers and booleans become gauges; a mapping of
name -> numbers, like per-stage latencies, becomes one gauge per field labelled by name), so a
field the loop adds later shows up without touching this file.
"""

from __future__ import annotations

import re
from typing import Any

from vigil360.edge.server.hub import HubStats

_NAME_SAFE = re.compile(r"[^a-zA-Z0-9_]")


def _name(*parts: str) -> str:
    return _NAME_SAFE.sub("_", "_".join(p for p in parts if p))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class _Writer:
    """Collects samples grouped by metric name (the format wants each family in one block)."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None, *,
               kind: str = "gauge", help_: str = "") -> None:
        _, _, lines = self._families.setdefault(name, (kind, help_, []))
        label_text = ""
        if labels:
            label_text = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
        lines.append(f"{name}{label_text} {value:g}")

    def text(self) -> str:
        out: list[str] = []
        for name, (kind, help_, lines) in self._families.items():
            if help_:
                out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n"


# Status fields that only ever grow during a run: Prometheus counters, named `_total` (rate()
# and increase() work on them; a gauge named like a counter would mislead).
_COUNTERS = frozenset({"vigil360_loop_frames", "vigil360_loop_dropped_frames", "vigil360_loop_alerts",
                       "vigil360_loop_model_stages_succeeded", "vigil360_loop_model_stages_failed",
                       "vigil360_loop_speech_spoken", "vigil360_loop_speech_failures",
                       "vigil360_loop_speech_restarts"})


def _flatten_status(writer: _Writer, prefix: str, value: Any, labels: dict[str, str]) -> None:
    number = _number(value)
    if number is not None:
        if prefix in _COUNTERS:
            writer.sample(prefix + "_total", number, labels, kind="counter")
        else:
            writer.sample(prefix, number, labels)
        return
    if not isinstance(value, dict):
        return  # text (source description, backend names) is in /v1/status, not a metric
    children = list(value.values())
    if children and all(isinstance(child, dict) for child in children):
        # A mapping keyed by name (stages, models): the key becomes a label.
        key = prefix.rsplit("_", 1)[-1].removesuffix("s") or "name"
        for name, child in value.items():
            _flatten_status(writer, prefix, child, {**labels, key: str(name)})
        return
    for key, child in value.items():
        _flatten_status(writer, _name(prefix, key), child, labels)


def render_metrics(loop_status: dict[str, Any], hub: HubStats, *, loop_running: bool) -> str:
    writer = _Writer()
    writer.sample("vigil360_loop_thread_running", float(loop_running), help_="1 while the loop thread runs")
    _flatten_status(writer, "vigil360_loop", loop_status, {})
    writer.sample("vigil360_ws_clients", float(len(hub.clients)), help_="connected WebSocket clients")
    for kind, count in sorted(hub.published.items()):
        writer.sample("vigil360_events_published_total", float(count), {"type": kind}, kind="counter",
                      help_="events the loop emitted")
    writer.sample("vigil360_ws_events_sent_total", float(hub.sent), kind="counter",
                  help_="event messages sent to WebSocket clients")
    for kind, count in sorted(hub.dropped.items()):
        writer.sample("vigil360_ws_events_dropped_total", float(count), {"type": kind}, kind="counter",
                      help_="track/stats events dropped oldest-first for slow clients")
    for reason, count in sorted(hub.disconnects.items()):
        writer.sample("vigil360_ws_disconnects_total", float(count), {"reason": reason}, kind="counter",
                      help_="clients the server closed")
    writer.sample("vigil360_hub_publish_max_microseconds", hub.publish_max_us,
                  help_="longest time the loop spent in the server's sink")
    return writer.text()
