"""Build a Grounder / Captioner from config: the one place that knows the three backends.

Grounder and captioner often share one model; backends are cached by their settings so the
model is loaded once.
"""

from __future__ import annotations

from vigil360.config import Settings, VlmBackendConfig, VlmConfig
from vigil360.errors import UserError
from vigil360.models.vlm.interfaces import Captioner, Grounder, VlmBackend
from vigil360.models.vlm.tasks import VlmCaptioner, VlmGrounder

_BACKENDS: dict[str, VlmBackend] = {}


def build_backend(config: VlmBackendConfig) -> VlmBackend:
    key = config.model_dump_json(exclude={"max_new_tokens"})
    if key in _BACKENDS:
        return _BACKENDS[key]
    if config.backend == "transformers":
        if not config.model_dir:
            raise UserError("vlm backend 'transformers' needs model_dir (a local model folder)")
        from vigil360.models.vlm.backends.transformers_backend import TransformersBackend
        from vigil360.models.vlm.qwen.random_init import QWEN_FAMILIES, model_family

        if model_family(config.model_dir) in QWEN_FAMILIES:
            from vigil360.models.vlm.qwen.transformers_qwen import QwenTransformersBackend as TransformersBackend
        backend: VlmBackend = TransformersBackend(config.model_dir, threads=config.threads)
    elif config.backend == "onnx":
        if not config.onnx_dir:
            raise UserError("vlm backend 'onnx' needs onnx_dir (a folder written by `vigil360 export vlm`)")
        backend = load_onnx_backend(config.onnx_dir, providers=config.providers, threads=config.threads)
    else:
        from vigil360.models.vlm.backends.http_backend import HttpBackend

        backend = HttpBackend(**config.http.model_dump())
    _BACKENDS[key] = backend
    return backend


def load_onnx_backend(onnx_dir, **options) -> VlmBackend:
    """The ONNX backend class for the export's family (Idefics3 or Qwen-VL), loaded."""
    from vigil360.models.manifest import load_manifest
    from vigil360.models.vlm.qwen.random_init import QWEN_FAMILIES

    if load_manifest(onnx_dir, kind="vlm", verify=False).family in QWEN_FAMILIES:
        from vigil360.models.vlm.qwen.onnx_qwen import QwenOnnxBackend as OnnxBackend
    else:
        from vigil360.models.vlm.backends.onnx_backend import OnnxBackend
    return OnnxBackend(onnx_dir, **options)


def build_grounder(config: VlmConfig | Settings) -> Grounder:
    config = config.vlm if isinstance(config, Settings) else config
    return VlmGrounder(build_backend(config.grounder), max_new_tokens=config.grounder.max_new_tokens,
                       debug_dir=config.debug_dir)


def build_captioner(config: VlmConfig | Settings) -> Captioner:
    config = config.vlm if isinstance(config, Settings) else config
    return VlmCaptioner(build_backend(config.captioner), max_new_tokens=config.captioner.max_new_tokens,
                        debug_dir=config.debug_dir)


def clear_backend_cache() -> None:
    """Forget loaded backends (tests; or to free memory after a config change)."""
    for backend in _BACKENDS.values():
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    _BACKENDS.clear()
