"""`vigil360 run [SOURCE]`: the on-device loop from the command line.

With no SOURCE it runs the embedded default scenario. That scenario is rendered by the
synthetic generator in `bench`, which `edge` must not import; so the root package provides
it (`vigil360/demo.py` calls `set_default_source` when the CLI starts) and this module only
asks for "the default source" through that hook.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from vigil360.errors import MissingModelError, UserError


@dataclass(frozen=True)
class DefaultSource:
    path: Path
    description: str
    video_id: str
    truth: Path | None = None  # ground truth, when the default scenario has one (to score against)


_default_source: Callable[[], DefaultSource] | None = None


def set_default_source(provider: Callable[[], DefaultSource]) -> None:
    """Install what `vigil360 run` with no SOURCE runs (the root package's demo scenario)."""
    global _default_source
    _default_source = provider


def _model_threads() -> int:
    """Compute threads for a model stage: all cores but one. On a CPU-only wearable a model using
    every core would slow each frame by contention - the one way it could delay reflex alerts."""
    return max(1, (os.cpu_count() or 2) - 1)


_FETCH_HINT = {"--sam2": "export one with `vigil360 export sam2`",
               "--vlm": "give a model folder, an exported folder or an OpenAI-compatible server URL"}


def require_model_folder(flag: str, spec: str) -> None:
    """A model given as a folder must exist (a --vlm URL is a server, checked when it is called)."""
    if not (flag == "--vlm" and "://" in spec) and not Path(spec).is_dir():
        raise MissingModelError(f"{flag} {spec}: no such model folder ({_FETCH_HINT[flag]})")


def load_sam2_tracker(folder: str, threads: int | None = None):
    """The exported SAM2 tracker for BGR frames, loaded once; `Tracker360` wraps it per video."""
    require_model_folder("--sam2", folder)
    path = Path(folder)
    try:
        from vigil360.models.sam2_tracker import Sam2Tracker
    except ImportError as error:
        raise UserError(f"--sam2: this installation has no SAM2 tracker ({error})") from None
    return Sam2Tracker(path, color="bgr", threads=threads or _model_threads())  # frames are BGR


def load_mask_tracker(folder: str, width: int, height: int):
    """The SAM2 tracker on equirectangular frames, from an exported model folder."""
    from vigil360.edge.tracking360 import Tracker360

    return Tracker360(load_sam2_tracker(folder), width, height)


def vlm_config_for(spec: str, base, threads: int | None = None):
    """The settings' VLM section with both roles pointed at `spec`: a server URL (http backend), an
    exported folder (onnx backend, it holds manifest.json) or a local model folder (transformers)."""
    require_model_folder("--vlm", spec)
    if "://" in spec:
        patch = {"backend": "http", "http": {"base_url": spec}}
    elif (Path(spec) / "manifest.json").is_file():
        patch = {"backend": "onnx", "onnx_dir": spec}
    else:
        patch = {"backend": "transformers", "model_dir": spec}
    merged = base.model_dump()
    spare = threads or _model_threads()
    for role in ("grounder", "captioner"):
        http = {**merged[role]["http"], **patch.get("http", {})}
        merged[role].update({**patch, "http": http})
        if merged[role]["threads"] is None:
            merged[role]["threads"] = spare
    return type(base).model_validate(merged)


def load_vlm(spec: str, settings=None, threads: int | None = None):
    """(grounder, captioner) for `--vlm DIR|URL`, on top of the settings' VLM section."""
    if settings is None:
        from vigil360.config import Settings

        settings = Settings()
    config = vlm_config_for(spec, settings.vlm, threads)
    try:
        from vigil360.models.vlm import factory
    except ImportError as error:
        raise UserError(f"--vlm: this installation has no VLM stage ({error})") from None
    return factory.build_grounder(config), factory.build_captioner(config)


def _keyboard(loop, stop: threading.Event) -> None:
    """The wearer's (or a tester's) controls on a terminal: repeat last, mute, stop."""
    for line in sys.stdin:
        key = line.strip().lower()
        if key == "r":
            alert = loop.repeat_last()
            print("vigil360: nothing to repeat yet" if alert is None else f"vigil360: repeat: {alert.sentence}",
                  flush=True)
        elif key == "m":
            muted = not loop.settings.speech.muted
            loop.update_settings({"speech": {"muted": muted}})
            print(f"vigil360: speech {'muted' if muted else 'on'}", flush=True)
        elif key == "q":
            stop.set()
            return


def print_health(event) -> None:
    """Faults and the loop's end are printed even with --quiet: a failure must never be silent."""
    if event.type == "health" and not (event.component == "loop" and event.state == "ended"):
        print(f"vigil360: {event.component} {event.state}: {event.message}", file=sys.stderr, flush=True)


def _print_event(event) -> None:
    if event.type == "alert":
        flag = "URGENT " if event.urgent else ""
        print(f"[{event.frame_time_s:6.2f}s] {flag}{event.entity_id} ({event.tier}, risk {event.risk:.2f}): "
              f"{event.sentence}", flush=True)
    elif event.type == "caption":
        print(f"[{event.frame_time_s:6.2f}s] caption {event.entity_id}: {event.caption.text()}", flush=True)


def run(
    source: str | None = typer.Argument(None, help="video file, image folder, camera index or stream URL; "
                                                   "none: the embedded default scenario"),
    out: Path | None = typer.Option(None, "--out", help="output folder (default: runs/<source name>)"),
    settings_file: Path | None = typer.Option(None, "--settings", help="settings JSON (vigil360 Settings)"),
    sam2: str | None = typer.Option(None, "--sam2", help="exported SAM2 model folder: masks from SAM2"),
    vlm: str | None = typer.Option(None, "--vlm", help="VLM model folder or server URL: roles and captions"),
    no_speech: bool = typer.Option(False, "--no-speech", help="print alerts only; synthesise nothing"),
    realtime: bool = typer.Option(False, "--realtime", help="pace a file to its frame rate (drop when late)"),
    crop: bool = typer.Option(False, "--crop", help="centre-crop non-2:1 frames to 2:1"),
    assume_equirect: bool = typer.Option(False, "--assume-equirect",
                                         help="resize non-2:1 frames to 2:1 (footage known to be equirect)"),
    fps: float | None = typer.Option(None, "--fps", help="frame rate of an image folder (or override a video's)"),
    profile: Path | None = typer.Option(None, "--profile", help="write per-stage latency, FPS, memory as JSON"),
    video_out: Path | None = typer.Option(None, "--video-out", help="annotated mp4 for sighted reviewers"),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="stop after N frames"),
    verbosity: str | None = typer.Option(None, "--verbosity", help="minimal | normal | verbose"),
    directions: str | None = typer.Option(None, "--directions", help="clock | words"),
    quiet: bool = typer.Option(False, "--quiet", help="do not print alerts as they happen"),
    imu: Path | None = typer.Option(None, "--imu", help="gyro CSV: time_s,gyro_x,gyro_y,gyro_z (deg/s, camera axes "
                                                        "x right, y up, z ahead; see vigil360.edge.reflex.imu)"),
) -> None:
    """Run the loop: flag, track, describe, decide, speak, record. Alerts print as they happen."""
    from pydantic import ValidationError

    from vigil360.config import Settings
    from vigil360.records import atomic_write_text, describe_validation_error, iter_records

    settings = Settings.from_file(settings_file) if settings_file else Settings()
    overrides = {k: v for k, v in {"verbosity": verbosity, "directions": directions}.items() if v is not None}
    if overrides:
        try:
            settings = Settings.model_validate({**settings.model_dump(),
                                                "speech": {**settings.speech.model_dump(), **overrides}})
        except ValidationError as error:
            raise UserError(describe_validation_error(error, "options")) from None
    built = assemble_loop(source, settings, out=out, speech=not no_speech, realtime=realtime, crop=crop,
                          assume_equirect=assume_equirect, fps=fps, sam2=sam2, vlm=vlm, annotated_video=video_out,
                          max_frames=max_frames)
    loop, frames = built.loop, built.loop.source
    if imu is not None:
        _attach_gyro(loop, imu)
    print(f"vigil360: {frames.description}, {frames.width}x{frames.height} @ {frames.fps:g} fps; "
          + "; ".join(f"{k}: {v}" for k, v in loop.backends().items()), flush=True)
    loop.add_sink(print_health)
    if not quiet:
        loop.add_sink(_print_event)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    if sys.stdin is not None and sys.stdin.isatty():
        print("vigil360: keys (then Enter): r repeat the last alert, m mute/unmute, q stop", flush=True)
        threading.Thread(target=_keyboard, args=(loop, stop), name="vigil360-keys", daemon=True).start()
    failure: UserError | None = None
    try:
        summary = loop.run(stop)
    except UserError as error:
        failure, summary = error, loop.summary
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, still writing everything
        summary = loop.summary
    finally:
        restore()
    assert summary is not None
    atomic_write_text(built.out / "summary.json", summary.model_dump_json(indent=2) + "\n")
    if profile is not None:
        atomic_write_text(profile, summary.profile.model_dump_json(indent=2) + "\n")
    assert loop.recorder is not None
    records = list(iter_records(loop.recorder.path))  # proves the file validates against the schema
    _print_summary(summary, records[0].entities if records else [], loop.speaker, built.truth)
    if failure is not None:
        raise failure
    _exit_on_lost_output(summary, loop.recorder, built.out / "summary.json")


def _exit_on_lost_output(summary, recorder, summary_path: Path) -> None:
    """A run whose predictions are incomplete, or whose requested model stage never worked, ends
    non-zero (after everything was written): a script must not take it for a complete run."""
    problems = [f"model stage {name} never succeeded ({outcome.failed} call(s) failed, {outcome.unfinished} never "
                f"finished; last: {outcome.last_error}); "
                "alerts came from the reflex tier only"
                for name, outcome in summary.model_stages.items() if outcome.never_succeeded]
    if recorder.failure is not None:
        problems.append(f"{recorder.failure}; {recorder.lines_lost} line(s) not recorded "
                        "(the file is valid up to its last complete line)")
    if problems:
        raise UserError("; ".join(problems) + f" (see {summary_path})")


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and the first SIGINT stop the loop cleanly (everything is written, "stopped": true);
    a second SIGINT interrupts at once. Returns what restores the previous handlers."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be installed from the main thread
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum, _frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        print(f"vigil360: {signal.Signals(signum).name}: stopping (writing the summary)", file=sys.stderr,
              flush=True)
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _attach_gyro(loop, path: Path) -> None:
    """Hand the reflex tier a gyro track; a bad file is a one-line error naming the file and line."""
    from vigil360.edge.reflex.imu import GyroTrack, ImuError

    try:
        gyro = GyroTrack.from_csv(path)
    except ImuError as error:
        raise UserError(str(error)) from None
    use_gyro = getattr(loop.perception, "use_gyro", None)
    if use_gyro is None:
        raise UserError(f"--imu: the perception backend {type(loop.perception).__name__} takes no gyro")
    use_gyro(gyro)
    print(f"vigil360: gyro {path.name}: {gyro.times.size} samples, {gyro.times[0]:.2f}-{gyro.times[-1]:.2f} s",
          flush=True)


@dataclass
class AssembledLoop:
    loop: object  # EdgeLoop (imported lazily: `vigil360 --help` stays fast)
    out: Path
    video_id: str
    truth: Path | None


def assemble_loop(source: str | None, settings, *, out: Path | None = None, speech: bool = True,
                  record: bool = True, realtime: bool = False, crop: bool = False, assume_equirect: bool = False,
                  fps: float | None = None, sam2: str | None = None, vlm: str | None = None,
                  annotated_video: Path | None = None, max_frames: int | None = None,
                  track_masks: bool = False) -> AssembledLoop:
    """Source + models + speech + recorder -> an EdgeLoop ready to run (shared by `run` and `serve`).

    SOURCE None is the installed default scenario. Outputs go to OUT (default runs/<video id>):
    predictions.jsonl when `record`, speech/*.wav when speaking to files.
    """
    from vigil360.edge.announce import SpeechQueue
    from vigil360.edge.loop import EdgeLoop
    from vigil360.edge.recorder import PredictionRecorder
    from vigil360.edge.source import open_source
    from vigil360.edge.speech import Speaker
    from vigil360.schema import Video

    if crop and assume_equirect:
        raise UserError("--crop and --assume-equirect exclude each other")
    for flag, folder in (("--sam2", sam2), ("--vlm", vlm)):
        # Before a camera is opened: a missing model is the first thing the user hears about.
        if folder is not None:
            require_model_folder(flag, folder)
    truth = None
    if source is None:
        if _default_source is None:
            raise UserError("no SOURCE given and no default scenario is installed; pass a video file")
        default = _default_source()
        print(f"vigil360: no source given; running the default scenario: {default.description}", flush=True)
        source, video_id, truth = str(default.path), default.video_id, default.truth
    else:
        video_id = Path(source).stem if not source.isdigit() and "://" not in source else f"live-{source}"
    fit = "crop" if crop else "stretch" if assume_equirect else "check"
    frames = open_source(source, fit=fit, realtime=realtime, fps=fps, live_buffer=settings.loop.live_buffer)
    out = out or Path("runs") / video_id
    mask_tracker = load_mask_tracker(sam2, frames.width, frames.height) if sam2 else None
    grounder, captioner = load_vlm(vlm, settings) if vlm else (None, None)
    speaker = None
    if speech and settings.speech.enabled:
        speaker = Speaker(settings.speech, SpeechQueue(settings.speech), wav_dir=out / "speech")
    recorder = None
    if record:
        video = Video(video_id=video_id, fps=frames.fps, width=frames.width, height=frames.height,
                      num_frames=frames.num_frames)
        recorder = PredictionRecorder(out / "predictions.jsonl", video)
    loop = EdgeLoop(frames, settings, speaker=speaker, recorder=recorder, mask_tracker=mask_tracker,
                    grounder=grounder, captioner=captioner, annotated_video=annotated_video, max_frames=max_frames,
                    track_masks=track_masks)
    return AssembledLoop(loop, out, video_id, truth)


def _print_summary(summary, entities, speaker, truth: Path | None) -> None:
    from vigil360.edge.profiling import model_stage_lines

    p = summary.profile
    latency = p.frame_to_sentence_ms
    lines = [
        f"frames: {summary.frames} in {p.wall_s:.1f} s ({p.fps:.1f} fps), dropped {summary.dropped_frames}",
        f"alerts: {summary.alerts} about {len(entities)} entit{'y' if len(entities) == 1 else 'ies'}"
        + (f"; frame->sentence p50 {latency.p50_ms:.1f} ms, p95 {latency.p95_ms:.1f} ms" if latency else ""),
    ]
    if speaker is not None:
        lines.append(f"speech: {summary.spoken} utterance(s), {speaker.describe()}"
                     + (f"; {p.dropped_alerts} dropped (stale or superseded)" if p.dropped_alerts else ""))
        lines.extend(f"speech error: {e}" for e in list(speaker.errors)[:3])
        if summary.speech is not None and summary.speech.dead:
            lines.append(f"SPEECH IS DEAD: {summary.speech.dead}; alerts were printed but not heard")
    else:
        lines.append("speech: off (--no-speech, or speech.enabled is false)")
    lines.append(f"predictions: {summary.predictions} (valid schema record, {len(entities)} entities)")
    if truth is not None:
        lines.append(f"ground truth: {truth} (score with `vigil360 bench score`)")
    lines.extend(model_stage_lines(p.model_stages))
    if p.model_stages:
        lines.append(f"end of run: model stages and outputs closed in {p.finish_s:.1f} s after the last frame")
    lines.extend(f"FAULT {f.component} ({f.severity}): {f.message}" for f in summary.faults)
    stages = ", ".join(f"{k} {v.p50_ms:.1f}/{v.p95_ms:.1f}" for k, v in p.stages.items())
    lines.append(f"stages p50/p95 ms: {stages}")
    lines.append(f"memory: {p.rss_start_mb:.0f} -> {p.rss_end_mb:.0f} MiB (peak {p.peak_rss_mb:.0f})")
    print("\n".join(lines), file=sys.stdout, flush=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
