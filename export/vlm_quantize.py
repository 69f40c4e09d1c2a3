"""Weight-only quantisation of an exported VLM decoder for CPU decoding.

Token-by-token decoding on a CPU reads every decoder weight once per token and does little else, so
its speed follows the bytes read: fp32 weights and torch's fp32 weights run at the same speed (both
stream the same 2.4 GB per token for a 0.6B decoder). Two schemes:

- `int8`: onnxruntime's dynamic quantisation (int8 weights per tensor, activations quantised per
  call) on MatMul and Gemm;
- `int4`: block-wise 4-bit weights (`MatMulNBits`, blocks of 32 along the input dimension, one
  scale each, symmetric round-to-nearest), the scheme onnxruntime-genai ships for CPU LLMs;
  `accuracy_level` 4 lets the kernel run int8 dot products on the quantised activations (AVX-VNNI
  and AVX512-VNNI CPUs). MatMulNBits only rewrites MatMul nodes, and the exporter writes the LM
  head - a quarter of a 0.6B decoder's weights - as `Gemm(x, W, transB=1)`, so such Gemms are turned
  into MatMuls against the transposed weight first.

Neither is checked for parity with `generate`: quantisation changes the numbers (on random weights
the near-uniform logits make the greedy tokens diverge at once), so the export records how far the
tokens agree and the logits' correlation instead of refusing the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

DecoderWeights = Literal["fp32", "int8", "int4"]
INT4_BLOCK = 32
INT4_ACCURACY_LEVEL = 4  # int8 compute on quantised activations

DESCRIPTIONS = {
    "int8": "dynamic int8 weights (MatMul, Gemm), fp32 activations",
    "int4": f"int4 weights in blocks of {INT4_BLOCK} (MatMulNBits, symmetric, round-to-nearest), "
            f"accuracy level {INT4_ACCURACY_LEVEL} (int8 compute)",
}


def gemms_as_matmuls(model) -> int:
    """Rewrite `Gemm(x, W, transB=1)` with a constant W and no bias as `MatMul(x, W^T)`; returns how many."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    rewritten = 0
    for index, node in enumerate(graph.node):
        if node.op_type != "Gemm" or len(node.input) != 2 or node.input[1] not in weights:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (attributes.get("transA", 0), attributes.get("transB", 0), attributes.get("alpha", 1.0)) != (0, 1, 1.0):
            continue
        transposed = f"{node.input[1]}.transposed"
        if transposed not in weights:
            array = np.ascontiguousarray(numpy_helper.to_array(weights[node.input[1]]).T)
            weights[transposed] = numpy_helper.from_array(array, transposed)
            graph.initializer.append(weights[transposed])
        graph.node[index].CopyFrom(helper.make_node("MatMul", [node.input[0], transposed], list(node.output),
                                                    name=node.name))
        rewritten += 1
    return rewritten


def quantize_decoder_file(source: Path, target: Path, weights: DecoderWeights, big: bool) -> None:
    """Write `target` (an ONNX decoder with `weights`-bit weights) from the fp32 `source`."""
    if weights == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         use_external_data_format=big, extra_options={"MatMulConstBOnly": True})
        return
    if weights != "int4":
        raise ValueError(f"no quantisation scheme {weights!r} (int8 or int4)")
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(source))
    gemms_as_matmuls(model)
    config = DefaultWeightOnlyQuantConfig(block_size=INT4_BLOCK, is_symmetric=True,
                                          accuracy_level=INT4_ACCURACY_LEVEL, bits=4, op_types_to_quantize=("MatMul",))
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=INT4_BLOCK, is_symmetric=True,
                                     accuracy_level=INT4_ACCURACY_LEVEL, op_types_to_quantize=("MatMul",),
                                     algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=big)
