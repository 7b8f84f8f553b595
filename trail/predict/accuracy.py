"""Accuracy and ranking metrics for length predictions, and the constants to beat (pure numpy).

Scheduling uses predictions only to *order* requests, so ranking metrics (Kendall tau,
Spearman, pairwise ordering accuracy) matter as much as MAE. The constant baselines are the
best ones for MAE: the training median of the total length for prefill rows, and of the
remaining length at each decode position for decode rows (the mean is reported beside it).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float))))


def kendall_tau(pred: np.ndarray, true: np.ndarray) -> float:
    tau = stats.kendalltau(pred, true).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    rho = stats.spearmanr(pred, true).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def pairwise_accuracy(
    pred: np.ndarray, true: np.ndarray, max_n: int = 3000, seed: int = 0
) -> float:
    """Over pairs with different true lengths: how often the truly shorter one is predicted
    shorter (a tie in the prediction counts half) -- the comparison SPRPT makes. Exact over all
    pairs of up to `max_n` rows (a seeded subsample beyond)."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    if len(p) > max_n:
        keep = np.random.default_rng(seed).choice(len(p), max_n, replace=False)
        p, t = p[keep], t[keep]
    dt = np.sign(t[:, None] - t[None, :])
    dp = np.sign(p[:, None] - p[None, :])
    pairs = dt != 0
    if not pairs.any():
        return 0.5
    score = np.where(dp == dt, 1.0, np.where(dp == 0, 0.5, 0.0))
    return float(score[pairs].mean())


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties half: the pairwise ordering
    accuracy against a 0/1 truth (e.g. "will hit the cap")."""
    return pairwise_accuracy(score, np.asarray(positive).astype(float))


def report(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {
        "mae": round(mae(pred, true), 3),
        "kendall_tau": round(kendall_tau(pred, true), 4),
        "spearman": round(spearman(pred, true), 4),
        "pairwise_accuracy": round(pairwise_accuracy(pred, true), 4),
        "n": int(len(true)),
    }


class ConstantBaseline:
    """The best constant predictions from the training lengths, per decode position g: the
    remaining length L - g over the training requests still running at g (L > g)."""

    def __init__(self, train_lengths: np.ndarray):
        self.lengths = np.sort(np.asarray(train_lengths, dtype=float))

    def at(self, g: np.ndarray, statistic: str = "median") -> np.ndarray:
        g = np.asarray(g, dtype=int)
        out = np.empty(len(g))
        for value in np.unique(g):
            alive = self.lengths[self.lengths > value] - value
            if len(alive) == 0:
                alive = np.array([1.0])
            out[g == value] = np.median(alive) if statistic == "median" else alive.mean()
        return out
