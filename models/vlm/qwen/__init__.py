"""The Qwen-VL family (Qwen2.5-VL, Qwen3-VL): inputs built on the host, transformers and ONNX backends.

The published Qwen processors declare a video processor and cannot be built with transformers 5
without torchvision (their construction fails even with `video_processor=None`), so `inputs.py` does
their work with the image processor and tokenizer alone; everything grid-dependent (patch order,
window layout, rotary positions, M-RoPE ids) is computed there in numpy, which is also what keeps
the exported graphs grid-agnostic.
"""
