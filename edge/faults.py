"""What failed during a run, gathered from the loop's parts for the console, `summary.json` and
`/v1/status`.

A part that fails (speech, recording, an event client, a model stage, shutting a worker down)
must never stop the wearer's alerts, and must never fail silently either: each failure is
counted here with its last message, and each change of a part's state is pushed as a
`HealthEvent` (printed by `vigil360 run`, shown by the server's page).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["degraded", "failed"]


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    component: str = Field(description="speech, recording, events, model <stage>, shutdown")
    severity: Severity = Field(description="failed: the part does nothing for its user any more")
    count: int = Field(ge=0, description="failures so far")
    message: str = Field(description="what happened and what it costs, naming the file or stage")


class StageOutcome(BaseModel):
    """Model calls of one stage: only calls that returned count as runs."""

    model_config = ConfigDict(extra="forbid")

    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)
    last_error: str | None = None

    @property
    def never_succeeded(self) -> bool:
        return self.failed > 0 and self.succeeded == 0


def stage_outcome(worker) -> StageOutcome:
    """Successes and failures of a model stage's worker.

    Reads the worker's `counts` ("finished", "failed") where the worker keeps them; the older
    worker keeps only its last 20 errors and a tick per call, so there failures are a lower bound
    once more than 20 calls failed (NOTE: drop this fallback once every worker has `counts`).
    """
    errors = list(worker.errors)
    last = errors[-1] if errors else None
    counts = getattr(worker, "counts", None)
    if counts is not None:
        return StageOutcome(succeeded=counts.get("finished", 0), failed=counts.get("failed", 0), last_error=last)
    failed = len(errors)
    return StageOutcome(succeeded=max(0, worker.rate.total - failed), failed=failed, last_error=last)


def collect_faults(*, speech=None, recorder=None, sink_errors: list[str] | None = None,
                   stages: dict[str, StageOutcome] | None = None, shutdown: list[str] | None = None) -> list[Fault]:
    """The faults of a run so far, one per failing part."""
    faults: list[Fault] = []
    if speech is not None and (speech.failures or speech.dead):
        last = speech.last_errors[-1] if speech.last_errors else "no message"
        if speech.dead:
            faults.append(Fault(component="speech", severity="failed", count=speech.failures,
                                message=f"speech is dead ({speech.dead}): alerts are not heard; last error: {last}"))
        else:
            faults.append(Fault(component="speech", severity="degraded", count=speech.failures,
                                message=f"{speech.failures} utterance(s) not spoken; last error: {last}"))
    if recorder is not None and recorder.failure is not None:
        faults.append(Fault(component="recording", severity="failed", count=recorder.lines_lost,
                            message=f"{recorder.failure}; {recorder.lines_lost} line(s) not recorded "
                                    "(the file holds every complete line before)"))
    if sink_errors:
        faults.append(Fault(component="events", severity="degraded", count=len(sink_errors),
                            message=f"event client failed: {sink_errors[-1]}"))
    for name, outcome in (stages or {}).items():
        if outcome.failed:
            state = "never succeeded" if outcome.never_succeeded else f"succeeded {outcome.succeeded} time(s)"
            faults.append(Fault(component=f"model {name}", severity="failed" if outcome.never_succeeded else "degraded",
                                count=outcome.failed,
                                message=f"{outcome.failed} call(s) failed, {state}; last error: {outcome.last_error}"))
    if shutdown:
        faults.append(Fault(component="shutdown", severity="degraded", count=len(shutdown),
                            message="; ".join(shutdown)))
    return faults


class FaultWatch:
    """The faults whose part changed state since the last look (new, or degraded <-> failed)."""

    def __init__(self) -> None:
        self._seen: dict[str, Severity] = {}

    def changed(self, faults: list[Fault]) -> list[Fault]:
        out = [f for f in faults if self._seen.get(f.component) != f.severity]
        for fault in out:
            self._seen[fault.component] = fault.severity
        return out
