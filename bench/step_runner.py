"""A resumable runner of named steps, each in its own process with a time limit.

Made for scarce machine time (a GPU lent for minutes): every step's result is written to
`DIR/steps/NAME.json` as soon as it ends, so a rerun after an interruption skips what finished
(`ok` or `skipped`) and retries the rest only when asked to (`retry_failed`); a step that hangs
is killed at its own timeout; a step that raises, times out or crashes is recorded and the next
one runs. A step that needs an earlier one which did not succeed is skipped, naming it.

Steps run in a forked child so a hung driver call or a crash cannot take the runner with it; the
child writes its own result file, the parent writes one for a timeout or a child that died.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "skipped", "failed", "timeout"]
FINISHED: tuple[Status, ...] = ("ok", "skipped")


class StepResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    status: Status
    reason: str | None = Field(None, description="why it was skipped or failed")
    seconds: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict, description="what the step measured or found")


class Skip(Exception):  # noqa: N818 - reads as `raise Skip("no GPU")`
    """Raised by a step that cannot run here; the message is the reason recorded."""


@dataclass
class StepContext:
    out: Path  # the run's folder
    results: dict[str, StepResult]  # earlier steps' results, by name


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], dict]
    timeout_s: float = 300.0
    needs: tuple[str, ...] = ()  # steps that must be `ok` first
    description: str = ""


@dataclass
class RunLog:
    results: dict[str, StepResult] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # names whose persisted result was kept


def _path(out: Path, name: str) -> Path:
    return out / "steps" / f"{name}.json"


def _write(out: Path, result: StepResult) -> None:
    from vigil360.records import atomic_write_text

    atomic_write_text(_path(out, result.name), result.model_dump_json(indent=2) + "\n")


def load_result(out: Path, name: str) -> StepResult | None:
    path = _path(out, name)
    if not path.is_file():
        return None
    try:
        return StepResult.model_validate(json.loads(path.read_text()))
    except (ValueError, OSError):
        return None  # a half-written or foreign file: run the step again


def _child(step: Step, context: StepContext) -> None:
    started = time.perf_counter()
    try:
        data = step.run(context) or {}
        result = StepResult(name=step.name, status="ok", data=data)
    except Skip as reason:
        result = StepResult(name=step.name, status="skipped", reason=str(reason))
    except BaseException as error:  # noqa: BLE001 - every failure is recorded, none stops the run
        result = StepResult(name=step.name, status="failed", reason=f"{type(error).__name__}: {error}",
                            data={"traceback": traceback.format_exc(limit=8)})
    result.seconds = time.perf_counter() - started
    _write(context.out, result)


def run_steps(steps: list[Step], out: str | Path, retry_failed: bool = False,
              on_result: Callable[[StepResult, bool], None] | None = None) -> RunLog:
    """Run (or resume) `steps` in order; `on_result(result, reused)` is called after each."""
    out = Path(out)
    (out / "steps").mkdir(parents=True, exist_ok=True)
    log = RunLog()
    context = multiprocessing.get_context("fork")
    for step in steps:
        previous = load_result(out, step.name)
        keep = previous is not None and (previous.status in FINISHED or not retry_failed)
        if keep:
            log.results[step.name] = previous
            log.reused.append(step.name)
        else:
            missing = [n for n in step.needs if n not in log.results or log.results[n].status != "ok"]
            if missing:
                result = StepResult(name=step.name, status="skipped", reason="needs " + ", ".join(
                    f"{n} ({log.results[n].status if n in log.results else 'not run'})" for n in missing))
                _write(out, result)
            else:
                result = _run_one(step, StepContext(out=out, results=dict(log.results)), context)
            log.results[step.name] = result
        if on_result is not None:
            on_result(log.results[step.name], keep)
    return log


def _run_one(step: Step, context: StepContext, mp) -> StepResult:
    _path(context.out, step.name).unlink(missing_ok=True)
    started = time.perf_counter()
    process = mp.Process(target=_child, args=(step, context), name=f"step-{step.name}")
    process.start()
    process.join(step.timeout_s)
    if process.is_alive():
        process.kill()
        process.join()
        result = StepResult(name=step.name, status="timeout", reason=f"no result within {step.timeout_s:g} s",
                            seconds=time.perf_counter() - started)
        _write(context.out, result)
        return result
    result = load_result(context.out, step.name)
    if result is None:
        result = StepResult(name=step.name, status="failed", seconds=time.perf_counter() - started,
                            reason=f"the step's process died (exit code {process.exitcode}) without a result")
        _write(context.out, result)
    return result
