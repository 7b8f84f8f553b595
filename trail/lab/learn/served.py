"""Retrain the probe from captured served traffic, and refuse a probe that is not better.

Inputs are what the serving path wrote (docs/online_learning.md): the workers' hidden-state
rows of sampled requests (trail/engine/sink.py) and the replicas' label lines with the true
length (trail/serve/capture.py). Requests are split by id into train / val / held-out test; the
new probe keeps the running probe's layer, bins and position features, so a running replica
can swap it in place (trail/engine/reload.py). It ships only if its held-out MAE is lower than
the current probe's on the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trail.lab.learn.train import Recipe, fresh_or_finetuned
from trail.predict.accuracy import ConstantBaseline, kendall_tau, mae, report
from trail.predict.probe import ProbeBundle, ProbeMLP

FINISHED = ("stop", "length")


def split_of(request_id: str, test: float = 0.25, val: float = 0.1) -> str:
    """By request id, stable across runs and replicas."""
    u = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return "test" if u < test else "val" if u < test + val else "train"


@dataclass
class ServedRows:
    """One row per captured (request, position): the probe layer's vector, g, L - g."""

    vectors: np.ndarray  # [rows, H] float32
    steps: np.ndarray  # [rows]
    remaining: np.ndarray  # [rows]
    room: np.ndarray  # [rows] what the request's max_tokens still allowed (inf: no cap)
    request: np.ndarray  # [rows] index into ids
    ids: list[str]
    lengths: np.ndarray  # [requests]
    splits: np.ndarray  # [requests]

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits[self.request] == split)

    def count(self, split: str) -> int:
        return int((self.splits == split).sum())


def load_served(folder: Path, layer: int) -> ServedRows:
    """Join the captured rows with the finished requests' labels (others are ignored)."""
    import json

    from trail.engine.sink import read_captures, sink_metas
    from trail.serve.capture import read_labels

    metas = sink_metas(folder)
    if not metas:
        raise FileNotFoundError(f"no captured rows in {folder} (is capture.fraction > 0?)")
    layers = json.loads(metas[0].read_text())["layers"]
    if layer not in layers:
        raise ValueError(f"captures hold layers {layers}, the probe needs layer {layer}")
    axis = layers.index(layer)
    captures, labels = read_captures(folder), read_labels(folder)
    vectors: list[np.ndarray] = []
    steps, remaining, room, request, lengths = [], [], [], [], []  # type: ignore[var-annotated]
    ids: list[str] = []
    for rid in sorted(labels):
        label = labels[rid]
        if label.get("finish_reason") not in FINISHED or rid not in captures:
            continue
        length, cap = int(label["length"]), label.get("max_tokens") or float("inf")
        for g, vec in sorted(captures[rid].items()):
            if g < length:
                vectors.append(vec[axis])
                steps.append(g)
                remaining.append(length - g)
                room.append(cap - g)
                request.append(len(ids))
        ids.append(rid)
        lengths.append(length)
    if not vectors:
        raise ValueError(f"no finished captured request in {folder}")
    return ServedRows(
        vectors=np.asarray(vectors, dtype=np.float32),
        steps=np.asarray(steps),
        remaining=np.asarray(remaining, dtype=float),
        room=np.asarray(room, dtype=float),
        request=np.asarray(request),
        ids=ids,
        lengths=np.asarray(lengths, dtype=float),
        splits=np.asarray([split_of(r) for r in ids]),
    )


def predict(bundle: ProbeBundle, data: ServedRows, rows: np.ndarray) -> np.ndarray:
    """The probe's expected remaining length at each row (no refinement), capped as the
    scheduler caps it: by what the request's max_tokens still allows."""
    with torch.inference_mode():
        probs = bundle.probs(torch.as_tensor(data.vectors[rows]), data.steps[rows])
    return np.minimum(np.asarray(bundle.bins.expected(probs.double().numpy())), data.room[rows])


def evaluate(bundles: dict[str, ProbeBundle], data: ServedRows, split: str = "test") -> dict:
    """Held-out MAE and Kendall tau over rows and at the end of prefill, beside the best
    constant of the served training lengths (the median remaining length at g); every
    prediction capped by the request's max_tokens, as `trail inspect --recent` caps it."""
    rows = data.rows(split)
    true, steps = data.remaining[rows], data.steps[rows]
    constant = ConstantBaseline(data.lengths[data.splits == "train"]).at(steps)
    constant = np.minimum(constant, data.room[rows])
    preds = {"constant": constant, **{name: predict(b, data, rows) for name, b in bundles.items()}}
    first = steps == 0
    out: dict[str, Any] = {"requests": data.count(split), "rows": len(rows)}
    for name, pred in preds.items():
        out[name] = {
            "mae": round(mae(pred, true), 2),
            "kendall_tau": round(kendall_tau(pred, true), 4),
            "prefill": report(pred[first], true[first]) if first.sum() > 1 else None,
        }
    return out


def profile_rows(
    root: Path, current: ProbeBundle, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` rows of the original profile's *train* split at the probe's layer, in the
    probe's input form (position features appended): what a retraining mixes in so that a
    probe fitted to today's traffic does not forget the rest."""
    from trail.lab.learn.shards import load_profile

    data = load_profile(root, [current.layer])
    rows = data.split_rows("train")
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
    vectors = np.asarray(data.vectors[rows], dtype=np.float32).reshape(len(rows), -1)
    x = current.inputs(torch.as_tensor(vectors), data.steps[rows]).numpy()
    return x, np.asarray(data.labels[rows], dtype=np.float64)


def retrain(
    current: ProbeBundle,
    data: ServedRows,
    recipe: Recipe,
    mix: tuple[np.ndarray, np.ndarray] | None = None,
) -> ProbeBundle:
    """A new probe on the served train split (plus `mix`, rows of the original profile), same
    layer and bins: trained fresh or fine-tuned from the current probe, whichever is better on
    the served val split (which also picks the epoch)."""

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows = data.rows(split)
        x = current.inputs(torch.as_tensor(data.vectors[rows]), data.steps[rows]).numpy()
        return x, data.remaining[rows]

    (xt, yt), (xv, yv) = xy("train"), xy("val")
    if len(xt) == 0 or len(xv) == 0:
        raise ValueError("too few finished captured requests to train and validate")
    if mix is not None:
        xt, yt = np.concatenate([xt, mix[0]]), np.concatenate([yt, mix[1]])
    first = current.probe.net[0]
    assert isinstance(first, torch.nn.Linear)
    width = first.out_features  # the MLP's hidden width, kept
    fresh = ProbeMLP(xt.shape[1], current.bins.k, width)
    res, choice = fresh_or_finetuned(fresh, current.probe, (xt, yt, xv, yv), current.bins, recipe)
    card = {
        **{k: v for k, v in current.card.items() if k in ("served", "train_bin_rate", "model")},
        "data": "captured served traffic (trail train probe --from-served)",
        "parent_version": current.version,
        "requests": {s: data.count(s) for s in ("train", "val", "test")},
        "rows": {s: len(data.rows(s)) for s in ("train", "val", "test")},
        "mixed_profile_rows": 0 if mix is None else len(mix[1]),
        "best_epoch": res.best_epoch,
        "val_mae": round(res.val_mae, 4),
        "candidates": choice,
    }
    assert isinstance(res.model, ProbeMLP)
    return ProbeBundle(
        res.model, current.layer, current.bins, card, positional=current.positional, cap=current.cap
    )


def verdict(table: dict) -> tuple[bool, str]:
    """Ship only a probe whose held-out MAE beats the current one's."""
    new, old = table["retrained"]["mae"], table["current"]["mae"]
    if new < old:
        return True, f"held-out MAE {old:.1f} -> {new:.1f} ({1 - new / old:.0%} lower)"
    return False, f"refused: held-out MAE {new:.1f} is not below the current probe's {old:.1f}"
