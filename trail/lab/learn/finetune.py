"""End-to-end fine-tuning of the prompt predictor: LoRA on MiniLM + the MLP head, one loop.

The head starts from the frozen-encoder head (so epoch 0 is the frozen predictor) and the
adapter from zero. The loss is the bin cross-entropy, plus, with `rank_weight`, the pairwise
logistic ranking loss of `train.py` on the batch's expected lengths; the checkpoint kept is the
epoch with the best validation Kendall tau. Batches hold prompts of similar token length so that
padding does not dominate the cost of a CPU epoch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from trail.lab.learn.train import mae, seed_everything, train_step
from trail.predict.accuracy import kendall_tau
from trail.predict.bins import LengthBins
from trail.predict.prompt import PromptEncoder, PromptHead


@dataclass(frozen=True)
class FinetuneRecipe:
    epochs: int = 3
    batch: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.01
    rank_weight: float = 0.0
    lora_r: int = 8
    seed: int = 0


@dataclass
class FinetuneResult:
    encoder: PromptEncoder
    head: PromptHead
    best_epoch: int
    val_tau: float
    val_mae: float
    history: list[dict] = field(default_factory=list)


def length_batches(lengths: list[int], batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length: sort within chunks of 32 batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch * 32
    out: list[np.ndarray] = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        out += [part[i : i + batch] for i in range(0, len(part), batch)]
    return [out[i] for i in rng.permutation(len(out))]


@torch.inference_mode()
def predict_lengths(
    encoder: PromptEncoder, head: PromptHead, ids: list[list[int]], bins: LengthBins
) -> np.ndarray:
    encoder.eval()
    head.eval()
    out = np.zeros(len(ids))
    order = np.argsort([len(x) for x in ids], kind="stable")
    for s in range(0, len(ids), 64):
        rows = order[s : s + 64]
        probs = torch.softmax(head(encoder.embed_ids([ids[i] for i in rows])), dim=-1)
        out[rows] = bins.expected(probs.double().numpy())
    return out


def finetune(  # noqa: PLR0913
    encoder: PromptEncoder,
    head: PromptHead,
    train: tuple[list[str], np.ndarray],
    val: tuple[list[str], np.ndarray],
    bins: LengthBins,
    recipe: FinetuneRecipe = FinetuneRecipe(),
) -> FinetuneResult:
    """Fit adapter + head on (texts, total lengths); keep the epoch with the best val tau."""
    seed_everything(recipe.seed)
    encoder.add_lora(r=recipe.lora_r)
    ids_t, ids_v = encoder.token_ids(train[0]), encoder.token_ids(val[0])
    y = torch.as_tensor(np.asarray(train[1], dtype=np.float32))
    target = torch.as_tensor(bins.index(train[1]), dtype=torch.long)
    mids = torch.as_tensor(bins.midpoints, dtype=torch.float32)
    params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    rng = np.random.default_rng(recipe.seed)
    steps = recipe.epochs * len(length_batches([len(x) for x in ids_t], recipe.batch, rng))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps, pct_start=0.1)

    def evaluate(epoch: int, loss: float) -> dict:
        pred = predict_lengths(encoder, head, ids_v, bins)
        row = {"epoch": epoch, "loss": round(loss, 4)}
        row |= {
            "val_tau": round(kendall_tau(pred, val[1]), 4),
            "val_mae": round(mae(pred, val[1]), 2),
        }
        return row

    best = evaluate(-1, float("nan"))  # the warm start: the frozen-encoder head
    result = FinetuneResult(
        copy.deepcopy(encoder), copy.deepcopy(head), -1, best["val_tau"], best["val_mae"], [best]
    )
    bar = tqdm(total=steps, desc=f"fine-tune (rank {recipe.rank_weight})")
    for epoch in range(recipe.epochs):
        encoder.train()
        head.train()
        total = 0.0
        for rows in length_batches([len(x) for x in ids_t], recipe.batch, rng):
            logits = head(encoder.embed_ids([ids_t[i] for i in rows]))
            idx = torch.as_tensor(rows)
            loss = train_step(opt, sched, logits, target[idx], y[idx], mids, recipe.rank_weight)
            total += loss * len(rows)
            bar.update()
        row = evaluate(epoch, total / len(ids_t))
        result.history.append(row)
        bar.write(f"epoch {epoch}: {row}")
        if row["val_tau"] > result.val_tau:
            result.encoder, result.head = copy.deepcopy(encoder), copy.deepcopy(head)
            result.best_epoch, result.val_tau, result.val_mae = (
                epoch,
                row["val_tau"],
                row["val_mae"],
            )
    bar.close()
    result.encoder.eval()
    result.head.eval()
    return result
