"""Held-out evaluation at every decode step, as the engine serves.

Every held-out request is replayed step by step: the probe's output at each step, the Bayesian
refinement at the served cadence (probe every N steps, count-down in between), the prompt
prediction counting down, and the best constants. Predictions are capped by what the request's
max_tokens still allows (the profile's cap) before any error is taken, as the scheduler does.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from trail.predict.accuracy import ConstantBaseline, report
from trail.predict.bins import LengthBins
from trail.predict.refine import BayesRefiner

POSITIONS = (0, 1, 8, 16, 32, 64, 128, 256)
PREDICTORS = ("constant", "prompt", "probe", "refined")


@dataclass(frozen=True)
class Refinement:
    """How the served posterior is formed (the engine reads it from the probe card)."""

    predict_every: int = 1
    temper: float = 1.0
    divide_base_rate: bool = False
    prompt_prior: bool = True

    def refiner(self, bins: LengthBins, base_rate: np.ndarray) -> BayesRefiner:
        base = base_rate if self.divide_base_rate else None
        return BayesRefiner(bins, temper=self.temper, base_rate=base)


@dataclass
class HeldOut:
    """Held-out requests at every step: probe outputs per request ([L, K]), totals, prompts."""

    probs: list[np.ndarray]
    lengths: np.ndarray
    texts: list[str]

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """[n, Lmax, K] probe outputs (uniform beyond a request's end) and the [n, Lmax] mask."""
        n, lmax, k = len(self.probs), int(self.lengths.max()), self.probs[0].shape[1]
        out = np.full((n, lmax, k), 1.0 / k)
        mask = np.zeros((n, lmax), dtype=bool)
        for i, p in enumerate(self.probs):
            out[i, : len(p)] = p
            mask[i, : len(p)] = True
        return out, mask


def replay(
    refiner: BayesRefiner, probs: np.ndarray, every: int, prompt_dist: np.ndarray | None
) -> np.ndarray:
    """Expected remaining length at every step of every request ([n, Lmax]), as the scheduler
    computes it: a posterior update every `every` steps, a count-down of one per token between."""
    n, lmax, _ = probs.shape
    pred = np.empty((n, lmax))
    posterior, last, expected = prompt_dist, 0, np.zeros(n)
    for g in range(lmax):
        if g % every == 0:
            posterior = refiner.update(posterior, g - last, probs[:, g], first=g == 0)
            expected, last = np.asarray(refiner.bins.expected(posterior)), g
        pred[:, g] = expected - (g - last)
    return pred


def predictions(
    held: HeldOut,
    bins: LengthBins,
    prompt_dist: np.ndarray,
    base_rate: np.ndarray,
    constant: ConstantBaseline,
    choice: Refinement,
    cap: int,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Predicted remaining length of every predictor at every step ([n, Lmax] each), capped."""
    probs, mask = held.padded()
    g = np.broadcast_to(np.arange(probs.shape[1]), mask.shape)
    prompt_total = np.asarray(bins.expected(prompt_dist))
    refiner = choice.refiner(bins, base_rate)
    prior = prompt_dist if choice.prompt_prior else None
    raw = {
        "constant": constant.at(g.ravel()).reshape(g.shape),
        "constant_mean": constant.at(g.ravel(), "mean").reshape(g.shape),
        "prompt": prompt_total[:, None] - g,
        "probe": np.asarray(bins.expected(probs)),
        "refined": replay(refiner, probs, choice.predict_every, prior),
    }
    return {k: np.clip(v, 0.0, cap - g) for k, v in raw.items()}, mask


def truth(held: HeldOut, mask: np.ndarray) -> np.ndarray:
    g = np.arange(mask.shape[1])[None, :]
    return held.lengths[:, None] - g


def tables(preds: dict[str, np.ndarray], held: HeldOut, mask: np.ndarray) -> dict:
    """Metrics per predictor at the prefill row, over all decode rows, over all rows, and at
    each decode position of POSITIONS (requests still running there)."""
    true = truth(held, mask)
    g = np.broadcast_to(np.arange(mask.shape[1]), mask.shape)
    where = {"prefill": mask & (g == 0), "decode": mask & (g > 0), "all": mask}
    for pos in POSITIONS:
        if pos < mask.shape[1]:
            where[f"g={pos}"] = mask & (g == pos)
    return {
        name: {k: report(preds[k][m], true[m]) for k in (*PREDICTORS, "constant_mean")}
        for name, m in where.items()
        if m.sum() >= 2
    }


def choose_refinement(
    held: HeldOut,
    bins: LengthBins,
    prompt_dist: np.ndarray,
    base_rate: np.ndarray,
    cap: int,
    every: tuple[int, ...] = (1, 2, 4, 8, 16),
    tempers: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.05),
) -> tuple[Refinement, list[dict]]:
    """The refinement with the lowest MAE over every step of `held` (the validation split),
    the prefill row included: the scheduler ranks by the posterior from step 0 on."""
    probs, mask = held.padded()
    true = truth(held, mask)
    g = np.broadcast_to(np.arange(mask.shape[1]), mask.shape)
    grid = []
    for n, temper, divide, prior in itertools.product(every, tempers, (False, True), (False, True)):
        choice = Refinement(n, temper, divide, prior)
        refiner = choice.refiner(bins, base_rate)
        pred = replay(refiner, probs, n, prompt_dist if prior else None)
        pred = np.clip(pred, 0.0, cap - g)
        mae = float(np.abs(pred - true)[mask].mean())
        grid.append({**asdict(choice), "val_mae": round(mae, 3)})
    best = min(grid, key=lambda r: r["val_mae"])
    fields = {k: best[k] for k in asdict(Refinement())}
    return Refinement(**fields), grid


def confusion(bins: LengthBins, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts of (true bin, predicted bin = argmax) (Fig. 4 of the paper)."""
    out = np.zeros((bins.k, bins.k), dtype=int)
    np.add.at(out, (bins.index(labels), probs.argmax(axis=1)), 1)
    return out
