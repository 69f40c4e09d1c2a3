"""Model stages run beside the hot path: latest job wins, lower CPU priority, failures reported."""

from __future__ import annotations

import os
import threading
import time

import pytest

from vigil360.edge.model_stages import MODEL_NICE, LatestWorker
from vigil360.edge.profiling import StageTimer


def test_latest_job_wins_and_results_are_collected():
    timer = StageTimer()
    worker = LatestWorker("model", timer)
    release = threading.Event()
    worker.submit(lambda: release.wait(5) and "first")
    time.sleep(0.05)  # the first job is running now
    for n in range(5):
        worker.submit(lambda n=n: f"job {n}")
    release.set()
    assert worker.wait_idle(5.0)
    assert worker.drain() == ["first", "job 4"], "waiting jobs are replaced by the newest"
    assert worker.skipped == 4
    assert timer.summary()["model"].count == 2
    worker.close()


def test_a_failing_model_is_reported_not_raised():
    worker = LatestWorker("model", StageTimer())
    worker.submit(lambda: 1 / 0)
    assert worker.wait_idle(5.0)
    assert worker.drain() == [] and "ZeroDivisionError" in worker.errors[0]
    worker.close()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice is a Linux feature")
def test_model_threads_yield_the_cpu_to_the_hot_path():
    worker = LatestWorker("model", StageTimer())
    worker.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert worker.wait_idle(5.0)
    (nice,) = worker.drain()
    assert nice >= MODEL_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < MODEL_NICE, "the loop thread is not niced"
    worker.close()
