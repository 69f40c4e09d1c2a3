"""`vigil360 bench latency vlm` on the tiny model: the report's shape and its labelling, not its figures."""

from __future__ import annotations

import json


def test_latency_report_is_interleaved_with_median_and_range(tiny_vlm_dir, tiny_onnx_dir, tmp_path):
    from vigil360.bench.latency_vlm import markdown, measure

    report = measure(tiny_vlm_dir, {"onnxruntime": tiny_onnx_dir}, images=1, tokens=3, threads=1, warmup=0,
                     repeats=2)
    assert report["weights"].startswith("random-init") and report["machine"] and report["interleaved"]
    for backend in ("transformers", "onnxruntime"):
        figures = report["results"][backend]
        for key in ("vision_ms", "ttft_ms", "per_token_ms"):
            assert len(figures["runs"][key]) == 2  # one sample per round, vision included
            low, mid, high = (figures[key][k] for k in ("min", "median", "max"))
            assert 0 < low <= mid <= high
        speedup = figures["per_token_speedup"]
        assert 0 < speedup["min"] <= speedup["median"] <= speedup["max"]
    # The reference against itself, round by round: exactly 1.
    assert report["results"]["transformers"]["vision_speedup"]["median"] == 1.0
    table = markdown(report)
    assert "RANDOM WEIGHTS" in table and "| onnxruntime |" in table and report["machine"] in table
    assert "median (min–max)" in table and "load average" in table
    json.dumps(report)  # the --out file is plain JSON


def test_latency_command_is_wired(tiny_vlm_dir, tiny_onnx_dir, tmp_path):
    from typer.testing import CliRunner

    from vigil360.bench.latency import latency_app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(latency_app, ["vlm", "--model-dir", str(tiny_vlm_dir), "--onnx-dir",
                                              str(tiny_onnx_dir), "--quantized", "none", "--tokens", "2",
                                              "--threads", "1", "--warmup", "0", "--repeats", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["new_tokens"] == 2


def test_unknown_decoder_weights_are_refused_before_any_work():
    from typer.testing import CliRunner

    from vigil360.bench.latency import latency_app

    result = CliRunner().invoke(latency_app, ["vlm", "--quantized", "int3", "--family", "qwen3_vl"])
    assert result.exit_code == 2 and "int3" in result.output
