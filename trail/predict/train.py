"""Train a bin classifier (probe or prompt head) per METHOD.md: AdamW, lr cosine-annealed to 0,
cross-entropy over length bins, checkpoint chosen by validation MAE in tokens.

A ranking term can be added (`rank_weight`): a pairwise logistic loss on the expected lengths of
the pairs in a batch, as learning-to-rank schedulers train, since SPRPT uses only the order; the
checkpoint can then be chosen by validation Kendall tau (`select="tau"`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trail.predict.bins import LengthBins
from trail.predict.metrics import kendall_tau


@dataclass(frozen=True)
class Recipe:
    """The paper's recipe by default; the layer sweep uses fewer epochs and larger batches."""

    epochs: int = 30
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 0.01
    seed: int = 0
    rank_weight: float = 0.0  # 0: the paper's cross-entropy only
    select: str = "mae"  # checkpoint by validation "mae" (lowest) or "tau" (highest)


@dataclass
class TrainResult:
    model: nn.Module
    best_epoch: int
    val_mae: float
    val_tau: float = 0.0
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


def warm_start(model: nn.Module, x_train: np.ndarray) -> nn.Module:
    """A copy of a shipped (folded) model that train_classifier can fine-tune: its first Linear
    re-expressed on the inputs standardised as train_classifier will standardise x_train
    (W x + b == (W s) z + (b + W m) for z = (x - m) / s); training folds it back."""
    warm = copy.deepcopy(model)
    s = Standardiser.fit(torch.as_tensor(x_train, dtype=torch.float32))
    linear = next(m for m in warm.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        linear.bias += linear.weight @ s.mean
        linear.weight.mul_(s.std)
    return warm


def fresh_or_finetuned(
    fresh: nn.Module,
    current: nn.Module,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    bins: LengthBins,
    recipe: Recipe,
) -> tuple[TrainResult, dict[str, float]]:
    """Two candidates on a small new dataset: a model trained from scratch, and the current
    one fine-tuned from its weights (a tenth of the learning rate) — which keeps what it
    learned from a larger dataset. The better on validation (recipe.select) wins."""
    xt, yt, xv, yv = data
    runs = {
        "fresh": train_classifier(fresh, xt, yt, xv, yv, bins, recipe),
        "finetuned": train_classifier(
            warm_start(current, xt), xt, yt, xv, yv, bins, replace(recipe, lr=recipe.lr / 10)
        ),
    }
    score = {k: (-r.val_tau if recipe.select == "tau" else r.val_mae) for k, r in runs.items()}
    best = min(score, key=score.get)  # type: ignore[arg-type]
    return runs[best], {"chosen": best, **{f"val_{k}": round(v, 4) for k, v in score.items()}}


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.inference_mode()
def expected_lengths(model: nn.Module, x: torch.Tensor, bins: LengthBins) -> np.ndarray:
    probs = torch.softmax(model(x), dim=-1).double().numpy()
    return np.asarray(bins.expected(probs))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float))))


def pairwise_rank_loss(
    logits: torch.Tensor, lengths: torch.Tensor, mids: torch.Tensor
) -> torch.Tensor:
    """Logistic loss over the batch's pairs: the truly shorter one should expect fewer tokens."""
    expected = torch.softmax(logits, dim=-1) @ mids / 100.0  # ~unit scale
    shorter = lengths[:, None] < lengths[None, :]
    if not shorter.any():
        return logits.sum() * 0.0
    margin = expected[:, None] - expected[None, :]  # > 0 is the wrong order for shorter pairs
    return nn.functional.softplus(margin[shorter]).mean()


def train_step(  # noqa: PLR0913
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    logits: torch.Tensor,
    target: torch.Tensor,
    lengths: torch.Tensor,
    mids: torch.Tensor,
    rank_weight: float,
) -> float:
    """One optimiser step on the bin cross-entropy (+ rank_weight x the pairwise ranking loss);
    the batch's loss. Shared by the probe / frozen-head trainer and the prompt fine-tuner."""
    loss = nn.functional.cross_entropy(logits, target)
    if rank_weight:
        loss = loss + rank_weight * pairwise_rank_loss(logits, lengths, mids)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


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
    lengths = torch.as_tensor(np.asarray(y_train, dtype=np.float32))
    mids = torch.as_tensor(bins.midpoints, dtype=torch.float32)
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
            logits = model(xt[idx])
            loss = train_step(
                opt, sched, logits, target[idx], lengths[idx], mids, recipe.rank_weight
            )
            total += loss * len(idx)
        model.eval()
        pred = expected_lengths(model, xv, bins)
        val, tau = mae(pred, y_val), kendall_tau(pred, y_val)
        result.losses.append(total / len(xt))
        result.val_maes.append(val)
        better = tau > result.val_tau if recipe.select == "tau" else val < result.val_mae
        if better or result.best_epoch < 0:
            result.model, result.best_epoch = copy.deepcopy(model), epoch
            result.val_mae, result.val_tau = val, tau
    first = next(m for m in result.model.modules() if isinstance(m, nn.Linear))
    fold_standardiser(first, std)
    return result
