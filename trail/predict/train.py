"""Train a bin classifier (probe or prompt head) per METHOD.md: AdamW, lr cosine-annealed to 0,
cross-entropy over length bins, checkpoint chosen by validation MAE in tokens."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trail.predict.bins import LengthBins


@dataclass(frozen=True)
class Recipe:
    """The paper's recipe by default; the layer sweep uses fewer epochs and larger batches."""

    epochs: int = 30
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 0.01
    seed: int = 0


@dataclass
class TrainResult:
    model: nn.Module
    best_epoch: int
    val_mae: float
    losses: list[float] = field(default_factory=list)
    val_maes: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Standardiser:
    """Per-feature mean/std of the training inputs; folded into the first Linear after training
    so the shipped module is exactly Linear -> ReLU -> Linear on raw hidden states."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardiser:
        return cls(x.mean(0), x.std(0).clamp_min(1e-3))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def fold_standardiser(linear: nn.Linear, s: Standardiser) -> None:
    """W (x - m) / s + b == (W / s) x + (b - W (m / s))."""
    with torch.no_grad():
        w = linear.weight / s.std
        linear.bias -= linear.weight @ (s.mean / s.std)
        linear.weight.copy_(w)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.inference_mode()
def expected_lengths(model: nn.Module, x: torch.Tensor, bins: LengthBins) -> np.ndarray:
    probs = torch.softmax(model(x), dim=-1).double().numpy()
    return np.asarray(bins.expected(probs))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float))))


def train_classifier(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    bins: LengthBins,
    recipe: Recipe = Recipe(),
    progress: bool = True,
) -> TrainResult:
    """Fit on standardised inputs; return the best-validation-MAE model with raw-input weights."""
    seed_everything(recipe.seed)
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val, dtype=torch.float32)
    std = Standardiser.fit(xt)
    xt, xv = std(xt), std(xv)
    target = torch.as_tensor(bins.index(y_train), dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = (len(xt) + recipe.batch - 1) // recipe.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * per_epoch)
    gen = torch.Generator().manual_seed(recipe.seed)
    result = TrainResult(copy.deepcopy(model), -1, float("inf"))
    for epoch in tqdm(range(recipe.epochs), desc="epochs", disable=not progress):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), recipe.batch):
            idx = order[i : i + recipe.batch]
            loss = nn.functional.cross_entropy(model(xt[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        val = mae(expected_lengths(model, xv, bins), y_val)
        result.losses.append(total / len(xt))
        result.val_maes.append(val)
        if val < result.val_mae:
            result.model, result.best_epoch, result.val_mae = copy.deepcopy(model), epoch, val
    first = next(m for m in result.model.modules() if isinstance(m, nn.Linear))
    fold_standardiser(first, std)
    return result
