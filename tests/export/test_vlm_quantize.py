"""The decoder quantisation's graph rewrite and its 4-bit numbers, on small hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest


def _linear_graph(weight: np.ndarray, bias: np.ndarray | None = None, trans_b: int = 1):
    from onnx import TensorProto, helper, numpy_helper

    inputs = ["x", "w"] + (["b"] if bias is not None else [])
    node = helper.make_node("Gemm", inputs, ["y"], name="lm_head", transB=trans_b)
    out_features, in_features = weight.shape if trans_b else weight.shape[::-1]
    initializers = [numpy_helper.from_array(weight, "w")]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias, "b"))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_features])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_a_transposed_gemm_becomes_a_matmul_with_the_same_output():
    from vigil360.export.vlm_quantize import gemms_as_matmuls

    rng = np.random.default_rng(3)
    weight = rng.standard_normal((50, 64)).astype(np.float32)
    x = rng.standard_normal((1, 64)).astype(np.float32)
    model = _linear_graph(weight)
    expected = _run(model, x)
    assert gemms_as_matmuls(model) == 1
    assert [node.op_type for node in model.graph.node] == ["MatMul"]
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias, trans_b", [(np.ones(50, np.float32), 1), (None, 0)])
def test_gemms_that_are_not_plain_transposed_products_are_left_alone(bias, trans_b):
    from vigil360.export.vlm_quantize import gemms_as_matmuls

    weight = np.ones((50, 64) if trans_b else (64, 50), np.float32)
    model = _linear_graph(weight, bias, trans_b)
    assert gemms_as_matmuls(model) == 0
    assert [node.op_type for node in model.graph.node] == ["Gemm"]


def test_int4_weights_keep_the_product_close(tmp_path):
    """Round-to-nearest 4-bit blocks of 32: about 2-3 % relative error on Gaussian weights (the
    step is max|w| / 7 per block), far from the 100 % a wrong layout or scale would give."""
    import onnx

    from vigil360.export.vlm_quantize import quantize_decoder_file

    rng = np.random.default_rng(4)
    weight = rng.standard_normal((96, 128)).astype(np.float32)
    x = rng.standard_normal((1, 128)).astype(np.float32)
    model = _linear_graph(weight)
    onnx.save(model, tmp_path / "fp32.onnx")
    quantize_decoder_file(tmp_path / "fp32.onnx", tmp_path / "int4.onnx", "int4", big=False)
    quantized = onnx.load(str(tmp_path / "int4.onnx"))
    assert [node.op_type for node in quantized.graph.node] == ["MatMulNBits"]
    expected, got = _run(model, x), _run(quantized, x)
    relative = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert 1e-4 < relative < 0.1  # quantised (not a copy of the fp32 weights) and close


def test_an_unknown_scheme_is_refused(tmp_path):
    from vigil360.export.vlm_quantize import quantize_decoder_file

    with pytest.raises(ValueError, match="int8 or int4"):
        quantize_decoder_file(tmp_path / "a.onnx", tmp_path / "b.onnx", "int3", big=False)
