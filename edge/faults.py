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
    unfinished: int = Field(0, ge=0, description="jobs dropped or abandoned when the run ended")
    last_error: str | None = None

    @property
    def never_succeeded(self) -> bool:
        # Asked for and never delivered: every call failed, or none got to run before the end.
        return self.succeeded == 0 and self.failed + self.unfinished > 0


def stage_outcome(worker) -> StageOutcome:
    """Successes and failures of a model stage's worker (its run counts; failures are never runs)."""
    errors = list(worker.errors)
    counts = worker.counts
    return StageOutcome(succeeded=counts["finished"], failed=counts["failed"],
                        unfinished=counts["dropped"] + counts["abandoned"], last_error=errors[-1] if errors else None)


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
        if outcome.failed or outcome.never_succeeded:
            state = "never succeeded" if outcome.never_succeeded else f"succeeded {outcome.succeeded} time(s)"
            faults.append(Fault(component=f"model {name}", severity="failed" if outcome.never_succeeded else "degraded",
                                count=outcome.failed + outcome.unfinished,
                                message=f"{outcome.failed} call(s) failed, {outcome.unfinished} never finished "
                                        f"(the run ended first), {state}; last error: {outcome.last_error}"))
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
