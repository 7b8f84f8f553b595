"""Retrain the prompt head from captured served traffic (the probe's twin, trail/lab/learn/served.py).

The ingress captured the head's input embedding of sampled requests (never the text) and the
replicas their true length. The new head keeps the running predictor's bins and encoder (its
LoRA adapter, if fine-tuned), so an ingress can swap it in place; it ships only if its held-out
MAE beats the current head's on the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from trail.lab.learn.served import FINISHED, split_of
from trail.lab.learn.train import Recipe, fresh_or_finetuned
from trail.predict.accuracy import kendall_tau, mae
from trail.predict.prompt import PromptHead, PromptPredictor


@dataclass
class ServedPrompts:
    embeddings: np.ndarray  # [requests, 384]
    lengths: np.ndarray  # true output length
    room: np.ndarray  # the request's max_tokens (inf: none)
    splits: np.ndarray

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)


def load_served_prompts(folder: Path) -> ServedPrompts:
    """Captured embeddings joined with the finished requests' labels."""
    from trail.serve.capture import read_labels

    labels, prompts = read_labels(folder), read_labels(folder, "prompts")
    ids = [r for r in sorted(prompts) if labels.get(r, {}).get("finish_reason") in FINISHED]
    if not ids:
        raise ValueError(f"no finished request with a captured prompt embedding in {folder}")
    return ServedPrompts(
        embeddings=np.asarray([prompts[r]["embedding"] for r in ids], dtype=np.float32),
        lengths=np.asarray([labels[r]["length"] for r in ids], dtype=float),
        room=np.asarray([labels[r].get("max_tokens") or np.inf for r in ids], dtype=float),
        splits=np.asarray([split_of(r) for r in ids]),
    )


def predict(pred: PromptPredictor, data: ServedPrompts, rows: np.ndarray) -> np.ndarray:
    dist = pred.dist_from_embeddings(data.embeddings[rows])
    return np.minimum(np.asarray(pred.bins.expected(dist)), data.room[rows])


def evaluate(heads: dict[str, PromptPredictor], data: ServedPrompts, split: str = "test") -> dict:
    """Held-out MAE and Kendall tau of the total length, beside the best constant (the served
    training median), every prediction capped by the request's max_tokens."""
    rows = data.rows(split)
    true = data.lengths[rows]
    median = float(np.median(data.lengths[data.rows("train")]))
    preds = {"constant": np.minimum(median, data.room[rows])}
    preds |= {name: predict(p, data, rows) for name, p in heads.items()}
    out: dict[str, Any] = {"requests": len(rows)}
    for name, pred in preds.items():
        out[name] = {
            "mae": round(mae(pred, true), 2),
            "kendall_tau": round(kendall_tau(pred, true), 4),
        }
    return out


def retrain(current: PromptPredictor, data: ServedPrompts, recipe: Recipe) -> PromptPredictor:
    """A new head on the served train split, fresh or fine-tuned from the current head, the
    better by `recipe.select` on validation (which also picks the epoch)."""
    (xt, xv) = (data.embeddings[data.rows(s)] for s in ("train", "val"))
    (yt, yv) = (data.lengths[data.rows(s)] for s in ("train", "val"))
    if len(xt) == 0 or len(xv) == 0:
        raise ValueError("too few finished captured requests to train and validate")
    first = current.head.net[0]
    assert isinstance(first, nn.Linear)
    fresh = PromptHead(xt.shape[1], current.bins.k, first.out_features)
    data4 = (xt, yt, xv, yv)
    res, choice = fresh_or_finetuned(fresh, current.head, data4, current.bins, recipe)
    assert isinstance(res.model, PromptHead)
    card = {
        "data": "captured served traffic (trail train prompt --from-served)",
        "parent_version": current.version,
        "requests": {s: len(data.rows(s)) for s in ("train", "val", "test")},
        "best_epoch": res.best_epoch,
        "val_tau": round(res.val_tau, 4),
        "selected_by": f"validation {recipe.select}",
        "candidates": choice,
    }
    return PromptPredictor(res.model, current.bins, card, current.adapter, current.max_seq_length)
