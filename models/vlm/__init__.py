"""The compact VLM: Grounder and Captioner over transformers / ONNX Runtime / HTTP backends (docs/vlm.md)."""
