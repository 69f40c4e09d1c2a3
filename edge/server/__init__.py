"""Serving the on-device loop: HTTP/WebSocket API, the live page, and `vigil360 serve`.

- `app.create_app(loop, options)`: the FastAPI app (status, metrics, events, preview, config, repeat).
- `hub.EventHub`: per-client bounded queues; slow clients lose track/stats events, never alerts silently.
- `security`: loopback by default, a token otherwise, no cross-origin calls, capped request bodies.
- `running`: uvicorn in the foreground or on a thread; `serve_cli`: the command.
"""
