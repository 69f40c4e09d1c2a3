"""Export of SAM2 and the VLM to ONNX and TensorRT."""
