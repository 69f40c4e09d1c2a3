"""`vigil360 bench loop`: the whole on-device loop, end to end, as the wearer runs it.

Decode -> reflex tier -> decisions -> recording (predictions JSONL with masks) -> events, with
speech synthesised to WAV in its worker thread (off the hot path, measured apart). Reports FPS
end to end, per-stage p50/p95 ms, frame -> spoken-ready-sentence latency p50/p95, frame ->
synthesised-audio latency, dropped frames, model-stage rates, and resident memory at the start
and the end (with `--repeat`, a long stream: memory must stay flat).

The clip is a synthetic VIEW360-like scene at 1920x960 (rendered once into --work), or any
video given with --video.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import typer

from vigil360.bench.cli import bench_app
from vigil360.bench.latency import machine_name


def repeating_source(path: Path, repeat: int):
    """The video played `repeat` times as one stream (continuous indices and clock)."""
    from vigil360.edge.source import Frame, FrameSource, VideoFileSource

    first = VideoFileSource(path)

    class Repeating(FrameSource):
        def __init__(self) -> None:
            super().__init__(f"{first.description} x{repeat}", first.fps, "check")
            self.width, self.height = first.width, first.height
            self.num_frames = None if first.num_frames is None else first.num_frames * repeat

        def frames(self) -> Iterator[Frame]:
            offset = 0
            for turn in range(repeat):
                source = first if turn == 0 else VideoFileSource(path)
                count = 0
                for frame in source.frames():
                    count += 1
                    yield Frame(offset + frame.index, (offset + frame.index) / self.fps, frame.image, frame.read_at)
                source.close()
                offset += count

    return Repeating() if repeat > 1 else first


def memory_growth(samples: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """(RSS after warm-up, RSS at the end, least-squares slope in MiB per minute after warm-up)."""
    import numpy as np

    if len(samples) < 5 or samples[-1][0] - samples[0][0] < 60.0:
        return None  # under a minute of video, warm-up dominates: no trend to report
    times = np.array([t for t, _ in samples])
    rss = np.array([m for _, m in samples])
    settled = times >= times[0] + 0.2 * (times[-1] - times[0])
    if settled.sum() < 3:
        return None
    slope = float(np.polyfit(times[settled], rss[settled], 1)[0]) * 60.0
    return float(rss[settled][0]), float(rss[-1]), slope


@bench_app.command("loop")
def loop_command(
    video: Path | None = typer.Option(None, "--video", help="a 2:1 video (default: a synthetic 1920x960 scene)"),
    width: int = typer.Option(1920, "--width", help="width of the synthetic scene (height = width / 2)"),
    duration: float = typer.Option(10.0, "--duration", min=1.0, help="seconds of the synthetic scene"),
    kind: str = typer.Option("stealing", "--kind", help="synthetic scenario kind"),
    repeat: int = typer.Option(1, "--repeat", min=1, help="play the clip N times as one stream (memory check)"),
    speech: bool = typer.Option(True, "--speech/--no-speech", help="synthesise alerts to WAV in the worker"),
    sam2: str | None = typer.Option(None, "--sam2", help="exported SAM2 folder: measure the loop with SAM2 on"),
    vlm: str | None = typer.Option(None, "--vlm", help="VLM folder or URL: measure the loop with the VLM on"),
    work: Path | None = typer.Option(None, "--work", help="folder for the rendered clip (cached) and outputs"),
    json_out: Path | None = typer.Option(None, "--json", help="write the profile report as JSON"),
) -> None:
    """FPS end to end, per-stage ms, frame->sentence latency p50/p95, memory start/end."""
    import cv2

    from vigil360.bench.synthetic import ScenarioSpec, write_clip
    from vigil360.config import Settings
    from vigil360.edge.announce import SpeechQueue
    from vigil360.edge.loop import EdgeLoop
    from vigil360.edge.profiling import model_stage_lines, rss_mb
    from vigil360.edge.recorder import PredictionRecorder
    from vigil360.edge.run_cli import load_mask_tracker, load_vlm
    from vigil360.edge.speech import Speaker
    from vigil360.errors import UserError
    from vigil360.records import atomic_write_text
    from vigil360.schema import Video

    cv2.setNumThreads(2)
    work = work or Path(tempfile.gettempdir()) / "vigil360-bench-loop"
    if video is None:
        if width % 2:
            raise UserError(f"--width must be even, got {width}")
        spec = ScenarioSpec(kind=kind, seed=0, width=width, height=width // 2, duration_s=duration,
                            cross_seam=True if kind in ("stealing", "lookalikes") else None, bystanders=2)
        video = work / f"{spec.video_id}-{width}-{duration:g}s.mp4"
        if not video.exists():
            print(f"rendering {spec.video_id} at {width}x{width // 2}, {duration:g} s into {work} (once)")
            files = write_clip(spec, work / "render")
            files.video.replace(video)
    source = repeating_source(video, repeat)
    settings = Settings()
    speaker = None
    if speech:
        speaker = Speaker(settings.speech, SpeechQueue(settings.speech), wav_dir=work / "speech")
    recorder = PredictionRecorder(work / "predictions.jsonl", Video(
        video_id=video.stem, fps=source.fps, width=source.width, height=source.height, num_frames=source.num_frames))
    mask_tracker = load_mask_tracker(sam2, source.width, source.height) if sam2 else None
    grounder, captioner = load_vlm(vlm, settings) if vlm else (None, None)
    loop = EdgeLoop(source, settings, speaker=speaker, recorder=recorder, mask_tracker=mask_tracker,
                    grounder=grounder, captioner=captioner)
    print(f"loop benchmark: {source.description}, {source.width}x{source.height} - {machine_name()}")
    print("backends: " + "; ".join(f"{k}: {v}" for k, v in loop.backends().items()))
    memory: list[tuple[float, float]] = []  # (video seconds, RSS MiB), sampled with each stats event
    loop.add_sink(lambda event: memory.append((event.frame_time_s, rss_mb())) if event.type == "stats" else None)
    summary = loop.run()
    report = summary.profile
    print(f"end to end: {report.frames} frames in {report.wall_s:.1f} s = {report.fps:.1f} FPS "
          f"(decode, reflex, decisions, recording, events); dropped {report.dropped_frames}")
    print("stages (ms p50 / p95):")
    for name, stage in report.stages.items():
        print(f"  {name:<14} {stage.p50_ms:8.2f} {stage.p95_ms:8.2f}   (n={stage.count})")
    decision = report.stages.get("to_decision")
    if decision is not None:
        print(f"frame -> decision made (every frame; a sentence is ready here when one is due): "
              f"p50 {decision.p50_ms:.1f} ms, p95 {decision.p95_ms:.1f} ms")
    for label, latency in (("frame -> sentence", report.frame_to_sentence_ms),
                           ("frame -> audio (worker)", report.frame_to_speech_ms)):
        text = "no alerts" if latency is None else \
            f"p50 {latency.p50_ms:.1f} ms, p95 {latency.p95_ms:.1f} ms (n={latency.count})"
        print(f"{label}: {text}")
    print(f"alerts {report.alerts}, spoken {report.spoken}, speech dropped (stale/superseded) {report.dropped_alerts}")
    for line in model_stage_lines(report.model_stages):
        print(line)
    print(f"memory: RSS {report.rss_start_mb:.0f} MiB at start -> {report.rss_end_mb:.0f} MiB at end "
          f"(peak {report.peak_rss_mb:.0f} MiB)")
    growth = memory_growth(memory)
    if growth is not None:
        print(f"memory after warm-up (first 20% of the stream): {growth[0]:.0f} -> {growth[1]:.0f} MiB, "
              f"slope {growth[2]:+.2f} MiB per minute of video")
    if json_out is not None:
        atomic_write_text(json_out, report.model_dump_json(indent=2) + "\n")
        print(f"wrote {json_out}")
