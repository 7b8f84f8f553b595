"""Held-out evaluation: MAE (tokens) of prompt-only, probe-only, probe + Bayesian refinement and
the training-mean baseline, at every probed step of every test request."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trail.predict.bins import LengthBins
from trail.predict.refine import BayesRefiner

PREDICTORS = ("mean", "prompt", "probe", "refined")


@dataclass
class TestRows:
    """One probe layer's test rows: request index per row, steps, remaining labels, vectors."""

    row_request: np.ndarray
    steps: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    lengths: np.ndarray  # total output length per request
    texts: list[str]


def refine_rows(
    bins: LengthBins, prompt_dist: np.ndarray, probe_probs: np.ndarray, t: TestRows
) -> np.ndarray:
    """Posterior per row, replaying each request in step order as the scheduler would: the
    prompt distribution is the first posterior, then every probe output is a likelihood."""
    refiner = BayesRefiner(bins)
    post = np.zeros_like(probe_probs)
    for r in np.unique(t.row_request):
        rows = np.flatnonzero(t.row_request == r)
        rows = rows[np.argsort(t.steps[rows], kind="stable")]
        current, last = prompt_dist[r], 0
        for row in rows:
            g = int(t.steps[row])
            current = refiner.update(current, g - last, probe_probs[row])
            post[row], last = current, g
    return post


def predictions(
    bins: LengthBins,
    prompt_dist: np.ndarray,
    probe_probs: np.ndarray,
    t: TestRows,
    train_mean: float,
) -> dict[str, np.ndarray]:
    """Predicted remaining length per row for each predictor."""
    prompt_total = np.asarray(bins.expected(prompt_dist))[t.row_request]
    posterior = refine_rows(bins, prompt_dist, probe_probs, t)
    return {
        "mean": np.full(len(t.labels), train_mean),
        "prompt": np.maximum(prompt_total - t.steps, 0.0),
        "probe": np.asarray(bins.expected(probe_probs)),
        "refined": np.asarray(bins.expected(posterior)),
        "_posterior": posterior,
    }


def mae_table(pred: dict[str, np.ndarray], t: TestRows) -> dict[str, dict[str, float]]:
    """MAE over all rows, at prefill only (total length) and over decode rows only."""
    err = {k: np.abs(pred[k] - t.labels) for k in PREDICTORS}
    at = {"all": np.ones(len(t.labels), bool), "prefill": t.steps == 0, "decode": t.steps > 0}
    return {k: {w: round(float(e[m].mean()), 3) for w, m in at.items()} for k, e in err.items()}


def mae_by_progress(pred: dict[str, np.ndarray], t: TestRows, n: int = 10) -> dict:
    """MAE per decile of progress g / L (Fig. 3 of the paper)."""
    progress = t.steps / t.lengths[t.row_request]
    bucket = np.minimum((progress * n).astype(int), n - 1)
    centres = ((np.arange(n) + 0.5) / n).round(3).tolist()
    table = {"progress": centres, "rows": np.bincount(bucket, minlength=n).tolist()}
    for k in PREDICTORS:
        e = np.abs(pred[k] - t.labels)
        table[k] = [
            round(float(e[bucket == b].mean()), 3) if (bucket == b).any() else None
            for b in range(n)
        ]
    return table


def confusion(bins: LengthBins, posterior: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts of (true bin, predicted bin = argmax of the refined posterior) (Fig. 4)."""
    out = np.zeros((bins.k, bins.k), dtype=int)
    np.add.at(out, (bins.index(labels), posterior.argmax(axis=1)), 1)
    return out
