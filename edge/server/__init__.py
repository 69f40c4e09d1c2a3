"""Serving the on-device loop: HTTP/WebSocket API, the live page, and `vigil360 serve`.

- `app.create_app(loop, options)`: the FastAPI app, assembled from one router per concern:
  `routes_status` (health, status, metrics), `routes_events` (the WebSocket), `routes_preview`,
  `routes_config` (settings, repeat), `routes_page`; they share `context.Served`.
- `options.ServerOptions`, `loop_runner.LoopRunner`: how it is configured; the loop's thread.
- `hub.EventHub`: per-client bounded queues; slow clients lose track/stats events, never alerts silently.
- `security`: loopback by default, a token otherwise, no cross-origin calls, capped request bodies.
- `running`: uvicorn in the foreground or on a thread; `serve_cli`: the command.
"""
