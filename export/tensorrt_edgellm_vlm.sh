#!/usr/bin/env bash
# TensorRT Edge-LLM path for the VLM on Jetson (Qwen2/2.5/3-VL, InternVL3/3.5): a separate environment.
#
# NOT VERIFIED HERE: written on a CPU-only machine with no GPU lent; follows NVIDIA's published
# TensorRT-Edge-LLM VLM workflow (quantize/export on an x86 GPU host, build engines on the Jetson).
# tensorrt-edgellm pins its own transformers, so it lives in its own venv (never vigil360's .venv).
# vigil360 talks to it through its OpenAI-compatible server with the `http` VLM backend, so no
# Python package of the two environments ever meets the other.
#
# usage:  export/tensorrt_edgellm_vlm.sh host  MODEL_DIR WORK_DIR [fp16|fp8|int4_awq]   (x86 + NVIDIA GPU)
#         export/tensorrt_edgellm_vlm.sh device WORK_DIR EDGELLM_REPO                     (on the Jetson)
set -euo pipefail

VERSION="${EDGELLM_VERSION:-0.9.1}"
stage="${1:?usage: $0 host MODEL_DIR WORK_DIR [precision] | device WORK_DIR EDGELLM_REPO}"

case "$stage" in
  host)
    model_dir="${2:?MODEL_DIR}"; work="${3:?WORK_DIR}"; precision="${4:-fp16}"
    venv="$work/.venv-edgellm"
    if [ ! -x "$venv/bin/tensorrt-edgellm-export" ]; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --upgrade pip
      "$venv/bin/pip" install "tensorrt-edgellm==$VERSION"
    fi
    source_dir="$model_dir"
    if [ "$precision" != "fp16" ]; then
      "$venv/bin/tensorrt-edgellm-quantize" llm --model_dir "$model_dir" --quantization "$precision" \
        --output_dir "$work/quantized"
      source_dir="$work/quantized"
    fi
    "$venv/bin/tensorrt-edgellm-export" "$source_dir" "$work/onnx"
    echo "ONNX for the Jetson is in $work/onnx; copy it over and run: $0 device WORK_DIR EDGELLM_REPO"
    ;;
  device)
    work="${2:?WORK_DIR}"; repo="${3:?EDGELLM_REPO (a built TensorRT-Edge-LLM checkout)}"
    "$repo/build/examples/llm/llm_build" --onnxDir "$work/onnx/llm" --engineDir "$work/engines/llm"
    "$repo/build/examples/multimodal/visual_build" --onnxDir "$work/onnx/visual" --engineDir "$work/engines/visual"
    cat <<MSG
Engines are in $work/engines. Serve them with TensorRT Edge-LLM's OpenAI-compatible server (see its
docs for the exact command of your release), then point vigil360 at it, e.g. in settings.json:
  {"vlm": {"grounder": {"backend": "http", "http": {"base_url": "http://127.0.0.1:8000/v1", "model": "<name>"}},
           "captioner": {"backend": "http", "http": {"base_url": "http://127.0.0.1:8000/v1", "model": "<name>"}}}}
MSG
    ;;
  *)
    echo "unknown stage $stage (host | device)" >&2; exit 2 ;;
esac
