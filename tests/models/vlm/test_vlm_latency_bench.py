"""`vigil360 bench latency vlm` on the tiny model: the report's shape and its labelling, not its figures."""

from __future__ import annotations

import json


def test_latency_report_names_the_machine_and_says_random_weights(tiny_vlm_dir, tiny_onnx_dir, tmp_path):
    from vigil360.bench.latency_vlm import markdown, measure

    report = measure(tiny_vlm_dir, {"onnxruntime": tiny_onnx_dir}, images=1, tokens=3, threads=1, warmup=0,
                     repeats=1)
    assert report["weights"].startswith("random-init") and report["machine"]
    for backend in ("transformers", "onnxruntime"):
        figures = report["results"][backend]
        assert figures["vision_ms"] > 0 and figures["ttft_ms"] > 0 and figures["per_token_ms"] > 0
        assert len(figures["runs"]["per_token_ms"]) == 1
    table = markdown(report)
    assert "RANDOM WEIGHTS" in table and "| onnxruntime |" in table and report["machine"] in table
    assert report["results"]["onnxruntime"]["per_token_speedup_vs_transformers"] > 0
    json.dumps(report)  # the --out file is plain JSON


def test_latency_command_is_wired(tiny_vlm_dir, tiny_onnx_dir, tmp_path):
    from typer.testing import CliRunner

    from vigil360.bench.latency import latency_app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(latency_app, ["vlm", "--model-dir", str(tiny_vlm_dir), "--onnx-dir",
                                              str(tiny_onnx_dir), "--no-int8", "--tokens", "2", "--threads", "1",
                                              "--warmup", "0", "--repeats", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["new_tokens"] == 2
