"""The resumable step runner behind `vigil360 bench gpu`, and the GPU check on a machine without a GPU."""

from __future__ import annotations

import json
import os
import threading

import pytest

from vigil360.bench.step_runner import Skip, Step, load_result, run_steps


def _mark(context, name: str) -> None:
    """Steps run in a child process: they leave a line in a file so the test can count runs."""
    with open(context.out / "calls.txt", "a") as calls:
        calls.write(name + "\n")


def _calls(folder) -> list[str]:
    path = folder / "calls.txt"
    return path.read_text().split() if path.is_file() else []


def ok_step(context):
    _mark(context, "ok")
    return {"value": 3}


def uses_earlier(context):
    _mark(context, "uses_earlier")
    return {"doubled": context.results["first"].data["value"] * 2}


def raising_step(context):
    _mark(context, "raising")
    raise RuntimeError("driver said no")


def hanging_step(context):
    _mark(context, "hanging")
    threading.Event().wait()  # never set: only the runner's timeout ends this step


def crashing_step(context):
    os._exit(3)


def skipping_step(context):
    raise Skip("no CUDA GPU is visible on this machine")


def test_results_are_saved_and_a_rerun_skips_finished_steps(tmp_path):
    steps = [Step("first", ok_step), Step("second", uses_earlier, needs=("first",))]
    log = run_steps(steps, tmp_path)
    assert [r.status for r in log.results.values()] == ["ok", "ok"]
    assert log.results["second"].data == {"doubled": 6}
    assert load_result(tmp_path, "second").data == {"doubled": 6}
    rerun = run_steps(steps, tmp_path)
    assert rerun.reused == ["first", "second"] and _calls(tmp_path) == ["ok", "uses_earlier"]


def test_an_interrupted_run_resumes_at_the_missing_step(tmp_path):
    steps = [Step("first", ok_step), Step("second", uses_earlier, needs=("first",))]
    run_steps(steps, tmp_path)
    (tmp_path / "steps" / "second.json").unlink()  # as if the machine was taken back mid-run
    log = run_steps(steps, tmp_path)
    assert log.reused == ["first"] and _calls(tmp_path) == ["ok", "uses_earlier", "uses_earlier"]


def test_a_hanging_step_times_out_and_the_next_one_runs(tmp_path):
    log = run_steps([Step("hangs", hanging_step, timeout_s=1), Step("after", ok_step)], tmp_path)
    assert log.results["hangs"].status == "timeout" and "within 1 s" in log.results["hangs"].reason
    assert log.results["after"].status == "ok"
    assert _calls(tmp_path) == ["hanging", "ok"]


def test_failures_and_crashes_are_recorded_and_do_not_stop_the_run(tmp_path):
    steps = [Step("raises", raising_step), Step("crashes", crashing_step), Step("needs_it", ok_step,
                                                                               needs=("raises",)),
             Step("independent", ok_step), Step("no_gpu", skipping_step)]
    log = run_steps(steps, tmp_path)
    statuses = {name: result.status for name, result in log.results.items()}
    assert statuses == {"raises": "failed", "crashes": "failed", "needs_it": "skipped", "independent": "ok",
                        "no_gpu": "skipped"}
    assert log.results["raises"].reason == "RuntimeError: driver said no"
    assert "RuntimeError" in log.results["raises"].data["traceback"]
    assert "exit code 3" in log.results["crashes"].reason
    assert log.results["needs_it"].reason == "needs raises (failed)"
    assert log.results["no_gpu"].reason == "no CUDA GPU is visible on this machine"
    # Failed steps are kept on a plain rerun and retried on request.
    assert run_steps(steps, tmp_path).reused == [s.name for s in steps]
    retried = run_steps(steps, tmp_path, retry_failed=True)
    assert set(retried.reused) == {"needs_it", "independent", "no_gpu"}
    assert _calls(tmp_path).count("raising") == 2


def test_a_corrupt_saved_result_is_run_again(tmp_path):
    run_steps([Step("first", ok_step)], tmp_path)
    (tmp_path / "steps" / "first.json").write_text("{not json")
    assert run_steps([Step("first", ok_step)], tmp_path).reused == []


def test_gpu_steps_skip_with_a_reason_without_a_gpu(tmp_path):
    from vigil360.bench import gpu_check
    from vigil360.bench.step_runner import StepContext
    from vigil360.export.tensorrt import gpu_problem

    problem = gpu_problem()
    if problem is None:
        pytest.skip("this machine has a GPU with TensorRT: the GPU steps would run")
    context = StepContext(out=tmp_path, results={})
    for step in (lambda c: gpu_check.engines_step(c, 512, "fp16"), lambda c: gpu_check.fp16_parity_step(c, 512)):
        with pytest.raises(Skip, match=problem.split("(")[0].strip()):
            step(context)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(Skip, match="no CUDA GPU is visible to torch"):
            gpu_check.sam2_timing_step(context, 512, 1, 1)


def test_gpu_command_writes_a_valid_report_here(tmp_path):
    from vigil360.bench.gpu_check import load_report
    from vigil360.cli import main
    from vigil360.models.runtime import available_providers

    out = tmp_path / "gpu"
    try:
        main(["bench", "gpu", "--out", str(out), "--steps", "environment,trt_fp16_parity_512,vlm_cuda_decode"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    report = load_report(out / "gpu.json")
    steps = {step.name: step for step in report.steps}
    assert steps["environment"].status == "ok"
    assert steps["environment"].data["onnxruntime_providers"] == available_providers()
    assert steps["trt_fp16_parity_512"].status == "skipped"
    assert steps["trt_fp16_parity_512"].reason.startswith("needs trt_sam2_512_fp32 (not run)")
    assert steps["vlm_cuda_decode"].status == "skipped" and "vlm_export" in steps["vlm_cuda_decode"].reason
    table = (out / "gpu.md").read_text()
    assert "| environment | ok |" in table and "| vlm_cuda_decode | skipped |" in table
    assert json.loads((out / "steps" / "environment.json").read_text())["status"] == "ok"
