"""Train a bin classifier (probe or prompt head) per METHOD.md: AdamW, lr cosine-annealed to 0,
cross-entropy over length bins, checkpoint chosen by validation MAE in tokens.

A ranking term can be added (`rank_weight`): a pairwise logistic loss on the expected lengths of
the pairs in a batch, as learning-to-rank schedulers train, since SPRPT uses only the order; the
checkpoint can then be chosen by validation Kendall tau (`select="tau"`)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from trail.predict.accuracy import kendall_tau
from trail.predict.bins import LengthBins


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

    @classmethod
    def from_moments(cls, n: int, mean: np.ndarray, m2: np.ndarray) -> Standardiser:
        """From streamed moments (count, mean, sum of squared deviations): as `fit`."""
        std = torch.as_tensor(np.sqrt(m2 / max(n - 1, 1)), dtype=torch.float32)
        return cls(torch.as_tensor(mean, dtype=torch.float32), std.clamp_min(1e-3))

    def to(self, device: torch.device) -> Standardiser:
        return Standardiser(self.mean.to(device), self.std.to(device))

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
    probs = torch.softmax(model(x), dim=-1).double().cpu().numpy()
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


def training_device() -> torch.device:
    """CUDA when present: a probe on 4096-wide states is a GPU's work; else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class RowSource(Protocol):
    """Training rows: labels in memory, inputs wherever they live (RAM or memory-mapped
    shards), handed out in chunks (in order) or minibatches (shuffled)."""

    labels: np.ndarray  # remaining lengths, in the source's row order

    def __len__(self) -> int: ...

    def standardiser(self) -> Standardiser: ...

    def chunks(self, device: torch.device) -> Iterator[torch.Tensor]:
        """Every row once, in order, as float32 [m, width] on `device`."""
        ...

    def batches(
        self, batch: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: (inputs, their positions in `labels`), every row once, shuffled."""
        ...


class InMemoryRows:
    """Rows held in memory, shuffled over all of them at once (the original trainer's order:
    same seed, same batches)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray):
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.labels = np.asarray(labels)

    def __len__(self) -> int:
        return len(self.x)

    def standardiser(self) -> Standardiser:
        return Standardiser.fit(self.x)

    def chunks(self, device: torch.device) -> Iterator[torch.Tensor]:
        yield self.x.to(device)

    def batches(
        self, batch: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x = self.x.to(device)
        order = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            yield x[idx], idx


def predict_lengths(
    model: nn.Module,
    rows: RowSource,
    bins: LengthBins,
    std: Standardiser | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """Expected remaining length of every row, chunk by chunk (`std`: the inputs' scaling
    during training; None for a trained model, which takes raw inputs)."""
    device = device or next(model.parameters()).device
    parts = [
        expected_lengths(model, x if std is None else std(x), bins) for x in rows.chunks(device)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


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
    train, val = InMemoryRows(x_train, y_train), InMemoryRows(x_val, y_val)
    return train_rows(model, train, val, bins, recipe, progress)


def train_rows(  # noqa: PLR0913
    model: nn.Module,
    train: RowSource,
    val: RowSource,
    bins: LengthBins,
    recipe: Recipe = Recipe(),
    progress: bool = True,
    device: torch.device | None = None,
) -> TrainResult:
    """train_classifier over row sources (rows that need not fit in memory), on `device`
    (default: CUDA when present). The returned model is on the CPU."""
    seed_everything(recipe.seed)
    device = device or training_device()
    std_cpu = train.standardiser()
    std = std_cpu.to(device)
    target = torch.as_tensor(bins.index(train.labels), dtype=torch.long, device=device)
    lengths = torch.as_tensor(np.asarray(train.labels, dtype=np.float32), device=device)
    mids = torch.as_tensor(bins.midpoints, dtype=torch.float32, device=device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = (len(train) + recipe.batch - 1) // recipe.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * per_epoch)
    gen = torch.Generator().manual_seed(recipe.seed)
    result = TrainResult(copy.deepcopy(model), -1, float("inf"))
    for epoch in tqdm(range(recipe.epochs), desc="epochs", disable=not progress):
        model.train()
        total = 0.0
        for x, idx in train.batches(recipe.batch, gen, device):
            logits = model(std(x))
            loss = train_step(
                opt, sched, logits, target[idx], lengths[idx], mids, recipe.rank_weight
            )
            total += loss * len(idx)
        model.eval()
        pred = predict_lengths(model, val, bins, std, device)
        val_mae, tau = mae(pred, val.labels), kendall_tau(pred, val.labels)
        result.losses.append(total / len(train))
        result.val_maes.append(val_mae)
        better = tau > result.val_tau if recipe.select == "tau" else val_mae < result.val_mae
        if better or result.best_epoch < 0:
            result.model, result.best_epoch = copy.deepcopy(model), epoch
            result.val_mae, result.val_tau = val_mae, tau
    model.cpu()
    result.model.cpu()
    first = next(m for m in result.model.modules() if isinstance(m, nn.Linear))
    fold_standardiser(first, std_cpu)
    return result
