"""What the loop reports: its live status (for the server) and the summary of a run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vigil360.edge.events import StageLatency
from vigil360.edge.faults import Fault, StageOutcome
from vigil360.edge.profiling import ProfileReport, Samples, peak_rss_mb, rss_mb
from vigil360.edge.speech import SpeechHealth

LoopState = Literal["starting", "running", "ended", "stopped", "failed"]


class LoopStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    running: bool
    state: LoopState = Field("starting", description="failed: the loop ended on an error (see `error`)")
    backends: dict[str, str] = Field(description="stage -> what runs it (or 'off')")
    fps: float
    frames: int
    dropped_frames: int
    alerts: int
    stages: dict[str, StageLatency]
    model_rates_hz: dict[str, float] = Field(default_factory=dict)
    model_errors: dict[str, list[str]] = Field(default_factory=dict)
    model_stages: dict[str, StageOutcome] = Field(default_factory=dict, description="calls per model stage")
    speech: SpeechHealth | None = None
    faults: list[Fault] = Field(default_factory=list, description="what failed so far, one entry per part")
    error: str | None = None


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    frames: int
    dropped_frames: int
    alerts: int
    entities: list[str]
    spoken: int
    predictions: str | None
    profile: ProfileReport
    stopped: bool = Field(False, description="stopped on request before the source ended")
    model_stages: dict[str, StageOutcome] = Field(default_factory=dict, description="calls per model stage")
    speech: SpeechHealth | None = None
    faults: list[Fault] = Field(default_factory=list, description="everything that failed during the run")
    error: str | None = None


def summarise(loop, wall: float, rss_start: float, stopped: bool) -> RunSummary:
    """The summary of a finished run of `loop` (an `EdgeLoop`)."""
    speaker = loop.speaker
    spoken = speaker.spoken_count if speaker is not None else 0
    speech_latency = speaker.latency if speaker is not None else Samples()
    queue = loop.speech_queue
    source = loop.source
    profile = ProfileReport(
        source=source.description, frames=loop.frames, dropped_frames=source.dropped,
        wall_s=round(wall, 3), fps=round(loop.frames / wall, 2) if wall > 0 else 0.0,
        stages=loop.timer.summary(), frame_to_sentence_ms=loop.latency.summary(),
        frame_to_speech_ms=speech_latency.summary(),
        # Only calls that returned count as runs: a refused server is not a model running at 0.5 Hz.
        model_rates_hz={name: round(o.succeeded / wall, 3) if wall > 0 else 0.0
                        for name, o in loop.stage_outcomes().items()},
        alerts=loop.policy.count, spoken=spoken, dropped_alerts=queue.dropped_stale + queue.dropped_full,
        rss_start_mb=round(rss_start, 1), rss_end_mb=round(rss_mb(), 1), peak_rss_mb=round(peak_rss_mb(), 1),
    )
    return RunSummary(
        source=source.description, frames=loop.frames, dropped_frames=source.dropped,
        alerts=loop.policy.count, entities=loop.entities.announced_ids(), spoken=spoken,
        predictions=str(loop.recorder.path) if loop.recorder else None, profile=profile, stopped=stopped,
        model_stages=loop.stage_outcomes(), speech=speaker.health() if speaker is not None else None,
        faults=loop.faults(), error=loop.error,
    )
