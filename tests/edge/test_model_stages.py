"""Model stages beside the hot path: latest job wins, lower CPU priority, failures reported, true
rates, and a bounded, clean end of run that stops inference in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from vigil360.edge.model_stages import MODEL_NICE, StageWorker, shut_down
from vigil360.edge.profiling import StageTimer


def endless_onnx_model():
    """A real onnxruntime session and a job that runs it until it is stopped: a model call that
    never ends on its own, and honours `RunOptions.terminate` like the SAM2 and VLM graphs do."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from vigil360.models.runtime import run_options

    weight = numpy_helper.from_array(np.full((64, 64), 1 / 64, np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i - 1}", "w"], [f"h{i}"]) for i in range(200)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("h199", TensorProto.FLOAT, [64, 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    started = threading.Event()

    def job():
        started.set()
        x = np.ones((64, 64), np.float32)
        while True:
            x = session.run(None, {"x": x}, run_options())[0]

    return job, started


def test_latest_job_wins_and_results_are_collected():
    timer = StageTimer()
    worker = StageWorker("model", timer)
    started, release = threading.Event(), threading.Event()
    worker.submit(lambda: started.set() or (release.wait(30) and "first"))
    assert started.wait(30)  # the first job is running now
    for n in range(5):
        worker.submit(lambda n=n: f"job {n}")
    release.set()
    assert worker.wait_idle(30.0)
    assert worker.drain() == ["first", "job 4"], "waiting jobs are replaced by the newest"
    assert worker.skipped == 4
    report = worker.report()
    assert (report.started, report.finished, report.skipped) == (2, 2, 4)
    assert timer.summary()["model"].count == 2
    worker.close()


def test_a_failing_model_is_reported_not_raised():
    worker = StageWorker("model", StageTimer())
    worker.submit(lambda: 1 / 0)
    assert worker.wait_idle(30.0)
    assert worker.drain() == [] and "ZeroDivisionError" in worker.errors[0]
    report = worker.report()
    assert (report.started, report.finished, report.failed, report.abandoned) == (1, 0, 1, 0)
    worker.close()


def test_rate_is_over_the_stage_own_time_not_the_run_time():
    """Two 26.5 s captions with 100 s of idle time around them: 0.038 runs/s, not 2 / run length."""
    now = [0.0]

    def slow_caption():
        now[0] += 26.5
        return "caption"

    worker = StageWorker("vlm", StageTimer(), synchronous=True, clock=lambda: now[0])
    for _ in range(2):
        now[0] += 100.0  # the loop runs, the stage is idle
        worker.submit(slow_caption)
    report = worker.report()
    assert report.finished == 2 and report.busy_s == 53.0
    assert report.rate_hz == pytest.approx(2 / 53.0, abs=1e-4)
    assert report.latency_ms.p50_ms == pytest.approx(26500.0)
    assert report.mode == "synchronous"


def test_synchronous_stage_runs_each_job_before_submit_returns():
    worker = StageWorker("sam2", StageTimer(), synchronous=True)
    caller = threading.get_ident()
    for n in range(3):
        worker.submit(lambda n=n: (n, threading.get_ident()))
    assert worker.drain() == [(0, caller), (1, caller), (2, caller)], "every job, in order, on the loop thread"
    assert worker.report().skipped == 0
    shut_down([worker])
    assert worker.report().dropped == 0


def test_end_of_run_stops_inference_in_flight_and_counts_what_was_abandoned():
    endless, started = endless_onnx_model()
    captioner = StageWorker("vlm_captioner", StageTimer(), pending=8)
    captioner.submit(endless)
    assert started.wait(30)
    for n in range(3):
        captioner.submit(lambda n=n: n)  # waiting behind the endless run
    idle = StageWorker("sam2", StageTimer())
    shut_down([captioner, idle], grace_s=0.0, join_s=30.0)
    assert not captioner.alive() and not idle.alive()
    report = captioner.report()
    assert (report.started, report.finished, report.failed, report.abandoned, report.dropped) == (1, 0, 0, 1, 3)
    assert not report.errors and not report.still_running
    assert report.busy_s == 0.0, "an abandoned run is not part of the stage's own time"


def test_a_run_that_ends_within_the_grace_keeps_its_result():
    worker = StageWorker("vlm_grounder", StageTimer())
    started, release = threading.Event(), threading.Event()
    worker.submit(lambda: started.set() or (release.wait(30) and "grounding"))
    assert started.wait(30)
    release.set()
    shut_down([worker], grace_s=30.0, join_s=30.0)
    assert worker.drain() == ["grounding"]
    assert worker.report().finished == 1 and worker.report().abandoned == 0


def test_a_call_that_cannot_be_stopped_is_reported_and_waited_for():
    worker = StageWorker("http_vlm", StageTimer())
    started, release = threading.Event(), threading.Event()
    worker.submit(lambda: started.set() or release.wait(30))
    assert started.wait(30)
    shut_down([worker], grace_s=0.0, join_s=0.0)
    assert worker.report().still_running, "the report says a call outlived the join"
    release.set()
    assert worker.join(30.0)
    assert worker.report().finished == 1


def test_process_exits_cleanly_while_a_model_call_runs():
    """The crash of issue 17: the interpreter ending under a running onnxruntime call aborted the
    process (SIGABRT, exit 134). With the end-of-run policy the process exits 0 and says why."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {here!r})
        from test_model_stages import endless_onnx_model
        from vigil360.edge.model_stages import StageWorker, shut_down
        from vigil360.edge.profiling import StageTimer
        job, started = endless_onnx_model()
        worker = StageWorker("vlm", StageTimer())
        worker.submit(job)
        started.wait(60)
        shut_down([worker], grace_s=0.0, join_s=30.0)
        print("abandoned", worker.report().abandoned)
    """).format(here=os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "abandoned 1" in done.stdout


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice is a Linux feature")
def test_model_threads_yield_the_cpu_to_the_hot_path():
    worker = StageWorker("model", StageTimer())
    worker.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert worker.wait_idle(30.0)
    (nice,) = worker.drain()
    assert nice >= MODEL_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < MODEL_NICE, "the loop thread is not niced"
    worker.close()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice is a Linux feature")
def test_a_stopping_model_thread_gets_the_loop_priority_back():
    worker = StageWorker("vlm", StageTimer())
    started, release, seen = threading.Event(), threading.Event(), []

    def job():
        started.set()
        release.wait(30)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    worker.submit(job)
    assert started.wait(30)
    worker.stop()
    release.set()
    assert worker.join(30)
    loop_nice = os.getpriority(os.PRIO_PROCESS, 0)
    if seen[0] != loop_nice and os.geteuid() != 0:
        pytest.skip("raising a thread's priority needs CAP_SYS_NICE here")
    assert seen == [loop_nice]
