"""The prompt ranker (trail/lab/learn/rank_prompt.py): its pairwise / listwise losses order a
synthetic set whose signal is known, and a score maps to a bin distribution without losing the
order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trail.lab.learn.rank_prompt import (
    LOSSES,
    RankRecipe,
    ScoreToDist,
    pairwise_loss,
    score,
    train_ranker,
)
from trail.predict.accuracy import kendall_tau
from trail.predict.bins import LengthBins

BINS = LengthBins.from_edges([0, 20, 45, 77, 123, 179, 244, 321, 404, 496, 512])


def toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths a noisy monotone function of one of 16 inputs (offset and scaled like
    embeddings are not), with a third of them at the cap."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)) * 0.05 + 0.1
    z = (x[:, 3] - 0.1) / 0.05 + rng.normal(0, 0.3, n)
    return x.astype(np.float32), np.clip(np.round(200 + 220 * z), 1, 512)


@pytest.mark.parametrize("loss", LOSSES)
def test_losses_prefer_the_true_order(loss: str) -> None:
    lengths = torch.tensor([5.0, 40.0, 100.0, 300.0, 512.0, 512.0])
    right = torch.log1p(lengths)
    recipe = RankRecipe(loss=loss)
    assert pairwise_loss(right, lengths, recipe) < pairwise_loss(-right, lengths, recipe)


def test_margin_ignores_close_pairs() -> None:
    lengths = torch.tensor([100.0, 110.0])
    wrong = torch.tensor([1.0, 0.0])  # the longer one scored lower, but only 10 tokens apart
    assert pairwise_loss(wrong, lengths, RankRecipe(margin=32)).item() == 0.0
    assert pairwise_loss(wrong, lengths, RankRecipe(margin=0)).item() > 0.0


@pytest.mark.parametrize("loss", ["ranknet", "hinge"])
def test_ranker_learns_the_known_order(loss: str) -> None:
    torch.set_num_threads(1)
    xt, yt = toy(1200, 0)
    xv, yv = toy(300, 1)
    res = train_ranker(xt, yt, xv, yv, RankRecipe(loss=loss, epochs=30, width=32, batch=128))
    assert res.val_tau > 0.65  # the true order of the signal scores ~0.8 (noise, cap)
    # the returned module takes raw inputs (standardiser folded in) and reproduces val tau
    assert abs(kendall_tau(score(res.model, xv), yv) - res.val_tau) < 1e-6
    xh, yh = toy(300, 3)  # never seen, not even to pick the epoch
    assert kendall_tau(score(res.model, xh), yh) > 0.65


def test_score_to_dist_keeps_the_order() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=400)
    lengths = np.clip(250 + 150 * s + rng.normal(0, 150, 400), 1, 512)
    mapping = ScoreToDist.fit(s, lengths, BINS, groups=8)
    query = np.sort(rng.uniform(s.min(), s.max(), 200))
    dist = mapping.dist(query)
    np.testing.assert_allclose(dist.sum(1), 1.0, atol=1e-9)
    expected = np.asarray(BINS.expected(dist))
    assert np.all(np.diff(expected) > 0)  # strictly increasing inside the reference range
    assert expected[-1] - expected[0] > 100
