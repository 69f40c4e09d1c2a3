"""`vigil360 bench serve-load`: does serving WebSocket clients slow the loop, and how late do events arrive?

Three phases of `--duration` seconds each, each a fresh loop + server on loopback over the same
clip (played as fast as the loop goes, repeated as needed): no clients, one client, and
`--clients` clients. Clients run in a separate process (so their own work does not compete with
the loop for the interpreter) and read every event; event latency is the client's receive time
minus the event's `emit_time` (same machine, same clock). Reports loop FPS per phase, event
latency p50/p95/max, events received, events dropped for slow clients and disconnects. With two
or more cores the client process is pinned to the last one (clients are other devices in real use).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import typer

from vigil360.bench.cli import bench_app

_LATENCY_SAMPLES = 50_000  # per phase; plenty for p95 and bounded in memory


async def _read_events(url: str, samples: list[float], counts: dict, closes: list, stop: asyncio.Event,
                       ready: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, subprotocols=["vigil360.v1"], max_queue=None) as ws:
        ready.set()
        try:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                now = time.time()
                event = json.loads(text)
                counts[event["type"]] = counts.get(event["type"], 0) + 1
                if len(samples) < _LATENCY_SAMPLES:
                    samples.append((now - event["emit_time"]) * 1000.0)
        except ConnectionClosed as closed:
            closes.append(f"{closed.rcvd.code if closed.rcvd else 1006}: {closed.rcvd.reason if closed.rcvd else ''}")


async def _clients(url: str, count: int, conn) -> dict:
    samples: list[float] = []
    counts: dict[str, int] = {}
    closes: list[str] = []
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_read_events(url, samples, counts, closes, stop, ready)) for ready in readies]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
    conn.send("connected")
    while not conn.poll():
        await asyncio.sleep(0.1)
    conn.recv()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"latency_ms": samples, "counts": counts, "server_closes": closes}


def _client_process(url: str, count: int, conn) -> None:
    import os

    # On the wearer's device the clients are other machines (phones, a laptop). Here they share the
    # CPU; pinning them to one core keeps them off the others (the loop is free to use them all).
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[-1]})
    conn.send(asyncio.run(_clients(url, count, conn)))


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    import numpy as np

    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "max": round(float(max(values)), 2),
            "n": len(values)}


def _wait_for_delivery(hub, timeout_s: float = 15.0) -> None:
    """Let the clients catch up with what the loop emitted before it stopped (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(client.queued for client in hub.stats().clients):
        time.sleep(0.1)
    time.sleep(0.5)  # what was handed to the sockets last


def run_phase(video: Path, clients: int, duration: float, track_hz: float) -> dict:
    from vigil360.bench.loop_bench import repeating_source
    from vigil360.config import Settings
    from vigil360.edge.loop import EdgeLoop
    from vigil360.edge.server.app import ServerOptions, create_app
    from vigil360.edge.server.running import BackgroundServer

    settings = Settings.model_validate({"loop": {"track_event_every": 1}})  # the most events the loop makes
    loop = EdgeLoop(repeating_source(video, 10_000), settings)
    app = create_app(loop, ServerOptions(run_loop=False, max_event_clients=max(clients, 1)))
    result: dict = {"clients": clients}
    with BackgroundServer(app) as server:
        process, conn = None, None
        if clients:
            conn, child = multiprocessing.get_context("spawn").Pipe()
            process = multiprocessing.get_context("spawn").Process(
                target=_client_process, args=(f"{server.ws_url}/v1/events?track_hz={track_hz:g}", clients, child),
                daemon=True)
            process.start()
            if not conn.poll(90) or conn.recv() != "connected":
                raise RuntimeError("the client process did not connect")
        app.state.runner.start()
        time.sleep(duration)
        app.state.runner.stop()
        if process is not None:
            _wait_for_delivery(app.state.hub)
            conn.send("stop")
            if not conn.poll(60):
                raise RuntimeError("the client process did not report")
            clients_result = conn.recv()
            process.join(10)
            result["latency_ms"] = _percentiles(clients_result["latency_ms"])
            result["events_received"] = clients_result["counts"]
            result["server_closes"] = clients_result["server_closes"]
        hub = app.state.hub.stats()
    summary = app.state.runner.summary
    if summary is None:
        raise RuntimeError(f"the loop failed: {app.state.runner.error}")
    result.update(fps=summary.profile.fps, frames=summary.frames, events_published=hub.published,
                  events_dropped=hub.dropped, disconnects=hub.disconnects, sink_max_us=hub.publish_max_us)
    return result


def markdown(report: dict) -> str:
    lines = [
        f"Serving load ({report['source']}; {report['duration_s']:g} s per phase; {report['machine']}):",
        "",
        "| clients | loop FPS | event latency p50 / p95 / max (ms) | events received | dropped (slow clients) "
        "| disconnects |",
        "|---|---|---|---|---|---|",
    ]
    for phase in report["phases"]:
        latency = phase.get("latency_ms")
        latency_text = "-" if latency is None else f"{latency['p50']} / {latency['p95']} / {latency['max']}"
        received = sum(phase.get("events_received", {}).values()) if phase["clients"] else "-"
        dropped = sum(phase["events_dropped"].values())
        lines.append(f"| {phase['clients']} | {phase['fps']:.1f} | {latency_text} | {received} | {dropped} "
                     f"| {sum(phase['disconnects'].values())} |")
    return "\n".join(lines)


@bench_app.command("serve-load")
def serve_load(
    clients: int = typer.Option(50, "--clients", min=1, max=200, help="clients in the loaded phase"),
    duration: float = typer.Option(30.0, "--duration", min=2.0, max=300.0, help="seconds per phase"),
    width: int = typer.Option(960, "--width", help="width of the synthetic scene (height = width / 2)"),
    video: Path | None = typer.Option(None, "--video", help="a 2:1 video instead of the synthetic scene"),
    track_hz: float = typer.Option(30.0, "--track-hz", min=0.0, max=120.0,
                                   help="track events per entity per second each client asks for"),
    work: Path | None = typer.Option(None, "--work", help="folder for the rendered clip (cached)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report as JSON"),
) -> None:
    """Loop FPS and WebSocket event latency with 0, 1 and N clients on loopback (bounded in time)."""
    from vigil360.bench.latency import machine_name
    from vigil360.bench.synthetic import ScenarioSpec, write_clip
    from vigil360.errors import UserError
    from vigil360.records import atomic_write_text

    if video is None:
        if width % 2:
            raise UserError(f"--width must be even, got {width}")
        work = work or Path(tempfile.gettempdir()) / "vigil360-bench-serve"
        spec = ScenarioSpec(kind="stealing", seed=0, width=width, height=width // 2, duration_s=10.0,
                            cross_seam=True, bystanders=2)
        video = work / f"{spec.video_id}-{width}.mp4"
        if not video.exists():
            print(f"rendering {spec.video_id} at {width}x{width // 2} into {work} (once)", flush=True)
            video.parent.mkdir(parents=True, exist_ok=True)
            write_clip(spec, work / "render").video.replace(video)
    elif not video.is_file():
        raise UserError(f"--video {video}: no such file")
    report = {"source": f"{video.name} played as fast as the loop goes", "duration_s": duration,
              "machine": machine_name(), "track_hz": track_hz, "phases": []}
    for count in (0, 1, clients):
        print(f"phase: {count} client(s), {duration:g} s ...", flush=True)
        report["phases"].append(run_phase(video, count, duration, track_hz))
    print(markdown(report))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {json_out}")
