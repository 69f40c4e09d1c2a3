"""How `vigil360 serve` is configured: binding, access and the limits it holds clients to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8360
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    client_queue: int = 256
    # Event clients served at once (below the connection cap, so HTTP keeps room); one more is told
    # so (close code 1013) rather than slowing the rest.
    max_event_clients: int = 48
    send_timeout_s: float = 5.0
    batch_period_s: float = 0.02  # track/stats events reach clients within this; alerts at once
    preview_max_width: int = 960
    mjpeg_max_hz: float = 10.0
    # A client further behind than this (measured at the client: see running.DeliveryProbe) is
    # closed with a reason while the close frame still fits in its buffers; it may resume.
    max_lag_s: float = 3.0
    run_loop: bool = True
