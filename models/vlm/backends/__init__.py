"""VLM backends: each turns a VlmRequest into text; chosen by config in factory.py."""
