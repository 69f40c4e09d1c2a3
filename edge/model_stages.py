"""Optional model stages (SAM2 tracker, VLM grounder and captioner) in worker threads.

In real time the reflex tier's alerts never wait for a model: each stage runs in its own thread
on the newest job only (a job not yet started is replaced by a newer one and counted as skipped),
and the loop collects finished results without blocking. Views for the models are cut from the
frame in the worker, not on the loop thread. Models run at whatever rate the hardware allows;
each stage reports its runs (started, finished, failed, abandoned) and its rate over its own time.
Offline (bench runs), stages are synchronous: results do not depend on the machine's speed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from vigil360 import masks
from vigil360.edge.geometry import mask_to_anglebox
from vigil360.edge.profiling import ModelStageReport, RateMeter, StageTimer
from vigil360.edge.views import View, ViewSampler, horizon_tiles
from vigil360.schema import RLE, AngleBox, Caption, Role

# Nice value of model threads. On a CPU-only wearable the models share cores with the hot path;
# "never wait for a model" is not enough if a model can still slow every frame by contention, so
# model worker threads (and compute threads first started from them, e.g. torch's) yield the CPU to
# the reflex tier. onnxruntime's intra-op pool is created with its session, on the thread that
# loads the model, and keeps normal priority: that is why model sessions get one core fewer than
# the machine has (`run_cli._model_threads`).
MODEL_NICE = 10


def _lower_priority() -> None:
    # Linux applies nice per thread (the thread id is a process id for setpriority); elsewhere this
    # is a no-op and only the scheduler's fairness applies.
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, MODEL_NICE))
        except OSError:
            pass


def _restore_priority(native_id: int | None) -> None:
    """Give a stopping model thread the loop's priority back: once the loop has ended nothing needs
    the CPU more, and a niced thread on a busy machine can take seconds to reach the point where it
    notices the stop. Raising priority may need privileges (CAP_SYS_NICE); without them the thread
    keeps its nice value and only stops later."""
    if native_id is None or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, native_id, os.getpriority(os.PRIO_PROCESS, 0))


# End-of-run policy (see `shut_down`): a run in flight gets this long to land its result...
FINISH_GRACE_S = 1.0
# ...then it is stopped and its thread joined within this long. Both bound the exit: the wearer's
# device, or a batch job, must not hang on a caption nobody will hear.
JOIN_S = 2.0


class StageWorker:
    """Runs one model stage's jobs, in its own thread (background) or on the caller's (synchronous).

    Background (the wearer's real-time mode): at most `pending` jobs wait - with 1 the newest
    replaces the waiting one (latest wins), with more they wait first in, first out and the
    oldest is dropped when full; either way a job replaced before it started is counted as
    skipped. Finished results are collected by `drain()` without blocking.
    Synchronous (offline bench runs): `submit` runs the job at once, so each frame gets the
    results it scheduled whatever the machine's speed, and nothing is ever in flight at the end.
    """

    def __init__(self, name: str, timer: StageTimer, *, synchronous: bool = False, pending: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.name = name
        self._timer = timer
        self._clock = clock
        self.synchronous = synchronous
        self._jobs: deque[Callable[[], Any]] = deque()
        self._pending = pending
        self._cond = threading.Condition()
        self._results: deque[Any] = deque(maxlen=64)
        self._intake_closed = False
        self._stopping = False
        self._stopper: Any = None  # models.runtime.RunStopper of the worker thread, once it runs
        self._native_id: int | None = None
        self.counts = {"started": 0, "finished": 0, "failed": 0, "abandoned": 0, "dropped": 0, "skipped": 0}
        self.busy_s = 0.0
        self.errors: deque[str] = deque(maxlen=20)
        self.rate = RateMeter(window_s=30.0)  # live rate for status; the report uses the stage's own time
        self.busy = False
        self._thread: threading.Thread | None = None
        if not synchronous:
            # Not a daemon: the interpreter must never finish while a native model call runs in
            # this thread (onnxruntime then aborts the process: "terminate called without an
            # active exception"). `shut_down` stops it; an idle worker whose owner forgot to also
            # leaves once the main thread has ended.
            self._thread = threading.Thread(target=self._serve, name=f"vigil360-{name}", daemon=False)
            self._thread.start()

    @property
    def skipped(self) -> int:
        return self.counts["skipped"]

    def submit(self, job: Callable[[], Any]) -> None:
        if self._thread is None and not self._intake_closed:
            self._execute(job)
            return
        with self._cond:
            if self._intake_closed:
                self.counts["dropped"] += 1
                return
            if len(self._jobs) >= self._pending:
                self._jobs.popleft()
                self.counts["skipped"] += 1
            self._jobs.append(job)
            self._cond.notify_all()

    def _serve(self) -> None:
        from vigil360.models.runtime import RunStopper, bind_stopper

        self._native_id = threading.get_native_id()
        _lower_priority()
        self._stopper = RunStopper()
        bind_stopper(self._stopper)
        main = threading.main_thread()
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    if not self._cond.wait(timeout=0.5) and not main.is_alive():
                        return
                if self._stopping:
                    return
                job = self._jobs.popleft()
                self.busy = True
            self._execute(job)

    def _execute(self, job: Callable[[], Any]) -> None:
        with self._cond:
            self.counts["started"] += 1
        start = self._clock()
        result, outcome = None, "finished"
        try:
            result = job()
        except Exception as error:  # noqa: BLE001 - a model failure is reported, the loop goes on
            if self._stopping:
                outcome = "abandoned"  # stopped on purpose at the end of the run
            else:
                outcome = "failed"
                self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            elapsed = self._clock() - start
            if outcome == "finished":
                self._timer.add(self.name, elapsed * 1000.0)
                self.rate.tick()
            with self._cond:
                self.counts[outcome] += 1
                if outcome != "abandoned":
                    self.busy_s += elapsed
                # The result lands before the worker reads as idle: `wait_idle` + `drain` at the
                # end of a run must see the last model result.
                if result is not None:
                    self._results.append(result)
                self.busy = False
                self._cond.notify_all()

    def drain(self) -> list[Any]:
        out = []
        while self._results:
            out.append(self._results.popleft())
        return out

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self.busy, timeout)

    # --- end of run (see `shut_down`) -----------------------------------------------------

    def close_intake(self) -> None:
        """Accept no more jobs; drop the waiting ones (counted)."""
        with self._cond:
            self._intake_closed = True
            self.counts["dropped"] += len(self._jobs)
            self._jobs.clear()

    def stop(self) -> None:
        """Stop the run in flight (onnxruntime runs end at their next graph node) and the thread."""
        with self._cond:
            self._intake_closed = True
            self._stopping = True
            self.counts["dropped"] += len(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        if self._stopper is not None:
            self._stopper.stop()
        if self._thread is not None and self._thread.is_alive():
            _restore_priority(self._native_id)

    def join(self, timeout: float) -> bool:
        """True when the thread has ended (always, for a synchronous worker)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, grace_s: float = FINISH_GRACE_S, join_s: float = JOIN_S) -> None:
        shut_down([self], grace_s, join_s)

    def report(self) -> ModelStageReport:
        with self._cond:
            counts, busy_s = dict(self.counts), self.busy_s
        return ModelStageReport(
            mode="synchronous" if self.synchronous else "background", **counts,
            latency_ms=self._timer.summary().get(self.name), busy_s=round(busy_s, 3),
            rate_hz=round(counts["finished"] / busy_s, 4) if busy_s > 0 else 0.0,
            errors=list(self.errors)[-3:], still_running=self.alive(),
        )


def shut_down(workers: list[StageWorker], grace_s: float = FINISH_GRACE_S, join_s: float = JOIN_S) -> None:
    """End model stages at the end of a run, within about grace_s + join_s whatever they are doing.

    Policy: jobs still waiting are dropped (counted as dropped: nobody would hear about a frame
    that is gone); a run in flight may finish within `grace_s`, its result kept; after that it is
    stopped - onnxruntime's `RunOptions.terminate`, counted as abandoned - and the threads are
    joined within `join_s`. A call that cannot be stopped (a torch or HTTP backend) that outlives
    the join is reported as still running; its thread is not a daemon, so the process waits for it
    rather than exiting under it.
    """
    for worker in workers:
        worker.close_intake()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.wait_idle(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        worker.stop()
    deadline = time.monotonic() + join_s
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


# --- SAM2 -------------------------------------------------------------------------------


class MaskTracker(Protocol):
    """edge/tracking360.Tracker360: seeded by angle boxes, returns equirect masks per entity."""

    def add(self, entity_id: str, frame: np.ndarray, angle_box: AngleBox) -> Any: ...

    def remove(self, entity_id: str) -> None: ...

    def step(self, frame: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class TrackedMasks:
    frame_index: int
    masks: dict[str, tuple[RLE, AngleBox | None]]


class MaskTrackerStage:
    """Seeds arrive with the frame they were seen in; none is lost when jobs are skipped."""

    name = "sam2"

    def __init__(self, tracker: MaskTracker, timer: StageTimer, synchronous: bool = False) -> None:
        self.tracker = tracker
        self.worker = StageWorker(self.name, timer, synchronous=synchronous)
        self._seeds: list[tuple[str, np.ndarray, AngleBox]] = []
        self._retired: set[str] = set()
        self.tracked: set[str] = set()  # entity ids seeded and not retired (loop thread's view)
        self._lock = threading.Lock()

    def submit(self, frame_index: int, image: np.ndarray, seeds: list[tuple[str, AngleBox]]) -> None:
        """Track on this frame (latest wins); with nothing to track, SAM2 is not run at all."""
        with self._lock:
            self._seeds.extend((entity_id, image, box) for entity_id, box in seeds)
        self.tracked.update(entity_id for entity_id, _ in seeds)
        if self.tracked:
            self.worker.submit(lambda: self._step(frame_index, image))

    def retire(self, entity_id: str) -> None:
        """Stop tracking an entity that is gone (SAM2's cost grows with every tracked object)."""
        with self._lock:
            self._retired.add(entity_id)
        self.tracked.discard(entity_id)

    def _step(self, frame_index: int, image: np.ndarray) -> TrackedMasks:
        with self._lock:
            seeds, self._seeds = self._seeds, []
            retired, self._retired = self._retired, set()
        for entity_id in retired:
            self.tracker.remove(entity_id)
        for entity_id, seed_image, box in seeds:
            if entity_id not in retired:
                self.tracker.add(entity_id, seed_image, box)
        found = self.tracker.step(image)
        # Encoding happens here, off the loop thread.
        return TrackedMasks(frame_index, {eid: (masks.encode(m), mask_to_anglebox(m)) for eid, m in found.items()})


# --- VLM --------------------------------------------------------------------------------


@dataclass
class GroundedBox:
    box: AngleBox
    role: Role
    label: str
    confidence: float | None


@dataclass
class Grounding:
    frame_index: int
    frame_time_s: float
    entities: list[GroundedBox]
    rejected: list[str]


def _rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class GrounderStage:
    """Runs the grounder on views of the frame (around a trigger, or the whole horizon)."""

    name = "vlm_grounder"

    def __init__(self, grounder: Any, timer: StageTimer, view_size: int, synchronous: bool = False) -> None:
        self.grounder = grounder
        self.view_size = view_size
        self.worker = StageWorker(self.name, timer, synchronous=synchronous)

    def views_for(self, trigger: AngleBox | None) -> list[View]:
        if trigger is None:
            return horizon_tiles(4, 120.0, self.view_size)
        return [View(trigger.yaw, float(np.clip(trigger.pitch, -30, 30)), 90.0, self.view_size, self.view_size)]

    def submit(self, frame_index: int, time_s: float, image: np.ndarray, trigger: AngleBox | None,
               context: str) -> None:
        views = self.views_for(trigger)
        self.worker.submit(lambda: self._ground(frame_index, time_s, image, views, context))

    def _ground(self, frame_index: int, time_s: float, image: np.ndarray, views: list[View],
                context: str) -> Grounding:
        height, width = image.shape[:2]
        sampler = ViewSampler(width, height)
        crops = [_rgb(sampler.sample(image, view)) for view in views]
        result = self.grounder.ground(crops, context)
        found = []
        for entity in result.entities:
            if not 0 <= entity.view_index < len(views):
                continue
            yaw, pitch, box_w, box_h = sampler.box_to_angles(views[entity.view_index], entity.box_xyxy)
            box = AngleBox(yaw=yaw, pitch=float(np.clip(pitch, -90, 90)), width=min(box_w, 360.0),
                           height=min(box_h, 180.0))
            found.append(GroundedBox(box, entity.role, entity.label, entity.confidence))
        return Grounding(frame_index, time_s, found, list(result.rejected))


@dataclass
class Captioned:
    entity_id: str
    frame_index: int
    frame_time_s: float
    caption: Caption | None
    reason: str | None


class CaptionerStage:
    """Describes one announced entity from a short clip of views centred on it, the entity
    highlighted (outlined, the rest dimmed) where its mask is known, as MaskCaptioner does."""

    name = "vlm_captioner"

    def __init__(self, captioner: Any, timer: StageTimer, view_size: int, clip_size: int = 384,
                 dim: float = 0.35, synchronous: bool = False) -> None:
        self.captioner = captioner
        self.view_size = view_size
        self.clip_size = clip_size
        self.dim = dim
        # Several entities may wait their turn (first in, first out), unlike the other stages.
        self.worker = StageWorker(self.name, timer, synchronous=synchronous, pending=8)

    def submit(self, entity_id: str, frame_index: int, time_s: float,
               clip: list[tuple[np.ndarray, RLE | None]], box: AngleBox, context: str) -> None:
        """`clip`: (BGR equirect frame, the entity's mask in it at any resolution, or None)."""
        fov = float(np.clip(max(box.width, box.height) * 2.5, 40.0, 120.0))
        view = View(box.yaw, float(np.clip(box.pitch, -30, 30)), fov, self.view_size, self.view_size)
        self.worker.submit(lambda: self._describe(entity_id, frame_index, time_s, clip, view, context))

    def _crops(self, clip: list[tuple[np.ndarray, RLE | None]], view: View) -> list[np.ndarray]:
        height, width = clip[0][0].shape[:2]
        sampler = ViewSampler(width, height)
        images = [_rgb(sampler.sample(image, view)) for image, _ in clip]
        view_masks = []
        for _, rle in clip:
            if rle is None:
                view_masks.append(np.zeros((view.height, view.width), bool))
                continue
            mask = masks.decode(rle)
            view_masks.append(ViewSampler(mask.shape[1], mask.shape[0]).sample(mask, view, cv2.INTER_NEAREST))
        if not any(m.any() for m in view_masks):
            return images
        from vigil360.models.vlm.highlight import highlighted_clip

        return highlighted_clip(images, view_masks, size=self.clip_size, dim=self.dim, max_frames=len(images))

    def _describe(self, entity_id: str, frame_index: int, time_s: float,
                  clip: list[tuple[np.ndarray, RLE | None]], view: View, context: str) -> Captioned:
        result = self.captioner.describe(self._crops(clip, view), context)
        return Captioned(entity_id, frame_index, time_s, result.caption if result.ok else None,
                         None if result.ok else (result.reason or "caption rejected"))
