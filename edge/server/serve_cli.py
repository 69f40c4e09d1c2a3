"""`vigil360 serve [SOURCE]`: run the loop in the background and serve it over HTTP/WebSocket."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    source: str | None = typer.Argument(None, help="video file, image folder, camera index or stream URL; "
                                                   "none: the embedded default scenario"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind; anything but loopback needs a token"),
    port: int = typer.Option(8360, "--port", min=1, max=65535),
    token: str | None = typer.Option(None, "--token", envvar="VIGIL360_TOKEN", show_envvar=True,
                                      help="bearer token clients must present (prefer the environment variable: "
                                           "a command line is visible to other users)"),
    allow_origin: list[str] = typer.Option([], "--allow-origin",
                                           help="a web origin allowed to call the API from a browser (CORS); "
                                                "repeatable; none by default"),
    settings_file: Path | None = typer.Option(None, "--settings", help="settings JSON (vigil360 Settings)"),
    out: Path | None = typer.Option(None, "--out", help="also record predictions into this folder"),
    sam2: str | None = typer.Option(None, "--sam2", help="exported SAM2 model folder: masks from SAM2"),
    vlm: str | None = typer.Option(None, "--vlm", help="VLM model folder or server URL: roles and captions"),
    no_speech: bool = typer.Option(False, "--no-speech", help="emit alerts only; synthesise nothing"),
    realtime: bool = typer.Option(True, "--realtime/--as-fast-as-possible",
                                  help="pace a file to its frame rate (live sources always are)"),
    crop: bool = typer.Option(False, "--crop", help="centre-crop non-2:1 frames to 2:1"),
    assume_equirect: bool = typer.Option(False, "--assume-equirect", help="resize non-2:1 frames to 2:1"),
    fps: float | None = typer.Option(None, "--fps", help="frame rate of an image folder (or override a video's)"),
    track_masks: bool = typer.Option(False, "--track-masks", help="compute masks for track events (clients "
                                                                   "ask for them with ?masks=true)"),
) -> None:
    """Serve the loop: /healthz, /v1/status, /metrics, WS /v1/events, /v1/frame.jpg, /v1/config, the page."""
    from vigil360.config import Settings
    from vigil360.edge.run_cli import assemble_loop
    from vigil360.edge.server.app import ServerOptions, create_app
    from vigil360.edge.server.running import listen, serve_forever
    from vigil360.edge.server.security import check_binding, check_origins

    check_binding(host, token)  # before opening cameras or loading models
    check_origins(allow_origin)
    sock = listen(host, port)  # a port in use is the first thing said, before any banner
    try:
        settings = Settings.from_file(settings_file) if settings_file else Settings()
        built = assemble_loop(source, settings, out=out, speech=not no_speech, record=out is not None,
                              realtime=realtime, crop=crop, assume_equirect=assume_equirect, fps=fps, sam2=sam2,
                              vlm=vlm, track_masks=track_masks)
        app = create_app(built.loop, ServerOptions(host=host, port=port, token=token,
                                                   allowed_origins=tuple(allow_origin)))
    except BaseException:
        sock.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    page = f"http://{shown}:{port}/"
    print(f"vigil360: serving {built.loop.source.description} on {page} (API docs at /docs)"
          + (" - token required" if token else ""), flush=True)
    if token:
        # The page reads its token from the URL fragment, which browsers never send to a server.
        print(f"vigil360: open {page}#token={token} (API clients: Authorization: Bearer <token>)", flush=True)
    serve_forever(app, sock, host, port)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

