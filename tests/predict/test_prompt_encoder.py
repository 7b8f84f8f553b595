"""The prompt encoder as written out equals sentence-transformers' pipeline, and a LoRA
fine-tune moves the predictions and survives a save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trail.lab.learn.finetune import FinetuneRecipe, finetune, length_batches
from trail.predict.bins import LengthBins
from trail.predict.prompt import PromptEncoder, PromptHead, PromptPredictor, encoder_path

TEXTS = [
    "Say yes or no: is water wet?",
    "Write a long, detailed essay on the history of Rome, with sections and examples.",
    "What is 2 + 2?",
    "Explain transformers in depth, step by step, with code in Python and a summary table.",
] * 4
LENGTHS = np.array([5, 480, 3, 450] * 4)
BINS = LengthBins.from_edges([0, 20, 100, 300, 512])


def test_encoder_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(encoder_path()), device="cpu")
    st.max_seq_length = 256
    want = st.encode(TEXTS[:4], convert_to_numpy=True)
    np.testing.assert_allclose(PromptEncoder().encode(TEXTS[:4]), want, atol=1e-5)


def test_length_batches_cover_every_row_once() -> None:
    lengths = list(np.random.default_rng(0).integers(1, 200, size=101))
    batches = length_batches(lengths, 8, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(101))
    assert max(len(b) for b in batches) == 8


def test_finetune_learns_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = PromptHead(384, BINS.k)
    recipe = FinetuneRecipe(epochs=4, batch=4, lr=3e-3, rank_weight=1.0)
    res = finetune(PromptEncoder(), head, (TEXTS, LENGTHS), (TEXTS, LENGTHS), BINS, recipe)
    assert res.history[0]["epoch"] == -1 and len(res.history) == 5
    assert res.history[-1]["val_mae"] < res.history[0]["val_mae"]  # the loop learns
    assert res.val_tau >= res.history[0]["val_tau"]  # never worse than the warm start
    pred = PromptPredictor(res.head, BINS, adapter=Path("adapter"), _encoder=res.encoder)
    before = pred.expected(TEXTS[:4])
    assert before[1] > before[0] and before[3] > before[2]
    pred.save(tmp_path)
    size = sum(f.stat().st_size for f in (tmp_path / "adapter").iterdir())
    assert size < 2_000_000  # the adapter ships, the 90 MB base does not
    loaded = PromptPredictor.load(tmp_path)
    assert loaded.adapter == tmp_path / "adapter"
    np.testing.assert_allclose(loaded.expected(TEXTS[:4]), before, atol=1e-3)


def test_load_without_adapter_is_the_frozen_encoder(tmp_path: Path) -> None:
    PromptPredictor(PromptHead(384, BINS.k), BINS).save(tmp_path)
    loaded = PromptPredictor.load(tmp_path)
    assert loaded.adapter is None
    assert not (tmp_path / "adapter").exists()
    with pytest.raises(FileNotFoundError):
        PromptPredictor.load(tmp_path / "missing")
