"""A prompt ranker trained for order, not MAE (issue 35, step 3).

The shipped prompt head predicts a distribution over length bins with a cross-entropy loss and
the scheduler ranks by its expected value. Here a scoring MLP on the same (frozen) MiniLM
embeddings, shipped LoRA adapter included, is trained with a pairwise loss (RankNet, or a
margin hinge as in PARS) over the pairs of a batch whose lengths differ by more than `margin`
tokens, or a listwise one (ListNet top-one), on the same 4,096 training prompts as the head: the
profile's train split, rebuilt from the seeded ShareGPT order (`load_prompts`) and paired with
`train_lengths.txt`. A seeded tenth of them picks the epoch (validation Kendall tau).

Evaluation beside the shipped head (`PromptPredictor.load().expected`), by Kendall tau-b and
pairwise accuracy against the true lengths: the committed test set (512 profiled requests,
natural lengths), `heldout_brief.jsonl` (template traffic, lengths cut at 160 and 512) and,
given their lengths, the `heldout.jsonl` prompts. Embeddings are cached in ~/.cache/trail.

    python -m trail.lab.learn.rank_prompt run --out docs/results/rank_prompt.json  # ~30 s cached

Result (docs/predictors.md): ahead of the shipped head by ~0.02 tau, inside the noise.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from torch import nn

from trail.lab.learn.train import Standardiser, fold_standardiser, seed_everything
from trail.models.paths import SMOLLM2_ASSETS
from trail.predict.accuracy import kendall_tau, pairwise_accuracy
from trail.predict.bins import LengthBins

CACHE = Path.home() / ".cache" / "trail" / "rank_prompt"
LOSSES = ("ranknet", "hinge", "listnet")
app = typer.Typer(add_completion=False, no_args_is_help=True)


@dataclass(frozen=True)
class RankRecipe:
    loss: str = "ranknet"  # ranknet | hinge | listnet
    margin: float = 32.0  # pairs count only when their lengths differ by more (tokens)
    hinge: float = 1.0  # the score gap the hinge asks for
    temperature: float = 0.5  # listnet: softmax over log1p(length) / temperature
    epochs: int = 5  # where the clean (no-adapter) validation curve peaks; see docs
    batch: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.01
    width: int = 256
    dropout: float = 0.1
    seed: int = 0


class ScoreMLP(nn.Module):
    """Linear(dim, width) -> ReLU -> Dropout -> Linear(width, 1): a score, higher = longer."""

    def __init__(self, dim: int, width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def pairwise_loss(
    scores: torch.Tensor, lengths: torch.Tensor, recipe: RankRecipe = RankRecipe()
) -> torch.Tensor:
    """Mean loss over the pairs (i shorter than j by more than the margin): RankNet's logistic
    loss on s_j - s_i, the hinge max(0, hinge - (s_j - s_i)), or ListNet's top-one cross
    entropy between softmax(log1p(L) / T) and softmax(s)."""
    if recipe.loss == "listnet":
        target = torch.softmax(torch.log1p(lengths) / recipe.temperature, dim=0)
        return -(target * torch.log_softmax(scores, dim=0)).sum()
    longer = (lengths[None, :] - lengths[:, None]) > recipe.margin  # [i, j]: j longer than i
    if not longer.any():
        return scores.sum() * 0.0
    gap = (scores[None, :] - scores[:, None])[longer]
    if recipe.loss == "ranknet":
        return nn.functional.softplus(-gap).mean()
    if recipe.loss == "hinge":
        return nn.functional.relu(recipe.hinge - gap).mean()
    raise ValueError(f"unknown loss {recipe.loss!r}; one of {LOSSES}")


@dataclass
class RankResult:
    model: ScoreMLP  # takes raw embeddings (the standardiser is folded in)
    best_epoch: int
    val_tau: float
    history: list[float] = field(default_factory=list)  # val tau per epoch


@torch.inference_mode()
def score(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    model.eval()
    return model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def train_ranker(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    recipe: RankRecipe = RankRecipe(),
) -> RankResult:
    """AdamW with a cosine schedule on shuffled batches; the epoch with the best val tau."""
    seed_everything(recipe.seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    std = Standardiser.fit(xt)
    xt, xv = std(xt), std(torch.as_tensor(x_val, dtype=torch.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
    model = ScoreMLP(xt.shape[1], recipe.width, recipe.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = (len(xt) + recipe.batch - 1) // recipe.batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * per_epoch)
    gen = torch.Generator().manual_seed(recipe.seed)
    best = RankResult(model, -1, -2.0)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), recipe.batch):
            idx = order[i : i + recipe.batch]
            loss = pairwise_loss(model(xt[idx]), yt[idx], recipe)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        tau = kendall_tau(score(model, xv), y_val)
        best.history.append(round(tau, 4))
        if tau > best.val_tau:
            best.best_epoch, best.val_tau = epoch, tau
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    first = model.net[0]
    assert isinstance(first, nn.Linear)
    fold_standardiser(first, std)
    model.eval()
    return best


def rank_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {
        "tau": round(kendall_tau(pred, true), 4),
        "pairwise": round(pairwise_accuracy(pred, true), 4),
        "n": int(len(true)),
    }


@dataclass(frozen=True)
class ScoreToDist:
    """A pure score as the runtime's prior and initial rank: reference requests (scored out of
    sample) cut into `groups` score-quantile groups, each group's bin histogram an anchor at its
    mean score (the outer two at the lowest and highest score); adjacent groups are pooled until
    the anchors' expected lengths increase strictly. A score's distribution is the linear
    interpolation of its two neighbouring anchors, so its expected value is strictly increasing
    in the score inside the reference's range (flat beyond it): the order survives."""

    centres: np.ndarray  # [G] mean score of each anchor, increasing
    hist: np.ndarray  # [G, K] anchor distributions

    @classmethod
    def fit(
        cls, scores: np.ndarray, lengths: np.ndarray, bins: LengthBins, groups: int = 8
    ) -> ScoreToDist:
        order = np.argsort(scores, kind="stable")
        parts = [list(g) for g in np.array_split(order, groups)]
        while True:
            hist = np.array([bins.one_hot(lengths[g]).sum(0) + 0.5 for g in parts])
            hist /= hist.sum(1, keepdims=True)
            exp = hist @ bins.midpoints
            bad = np.flatnonzero(np.diff(exp) <= 0)
            if len(bad) == 0:
                break
            i = int(bad[0])
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        centres = np.array([scores[g].mean() for g in parts])
        if len(parts) > 1:  # the outer anchors at the extreme scores: fewer ties at the ends
            centres[0], centres[-1] = scores.min(), scores.max()
        return cls(centres, hist)

    def dist(self, scores: np.ndarray) -> np.ndarray:
        cols = [np.interp(scores, self.centres, self.hist[:, k]) for k in range(self.hist.shape[1])]
        return np.stack(cols, axis=1)


def read_lengths(path: Path = SMOLLM2_ASSETS / "train_lengths.txt") -> np.ndarray:
    rows = [x.strip() for x in path.read_text().splitlines()]
    return np.array([int(x) for x in rows if x and not x.startswith("#")])


def train_prompts() -> tuple[list[str], np.ndarray]:
    """The profile's train split (the prompts the shipped head was trained on) with its greedy
    lengths: the seeded prompt order of `profile.json`'s settings, checked against the test set
    (same order, same texts) before its train prompts are paired with `train_lengths.txt`."""
    from transformers import AutoTokenizer

    from trail.lab.learn.testset import load_testset
    from trail.lab.workload.sharegpt import load_prompts
    from trail.models.paths import smollm2_dir

    profile = json.loads((SMOLLM2_ASSETS / "profile.json").read_text())
    s = profile["settings"]
    n = len(profile["done"]) * int(s["shard_size"])
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
    prompts = load_prompts(tok, int(s["seed"]), max_tokens=int(s["max_prompt_tokens"]), limit=n)
    _, meta, _ = load_testset()
    test = [p.text for p in prompts if p.split == "test"]
    if test != [r["text"] for r in meta["requests"]]:
        raise RuntimeError("the rebuilt prompt order does not match the committed test set")
    texts = [p.text for p in prompts if p.split == "train"]
    lengths = read_lengths()
    if len(texts) != len(lengths):
        raise RuntimeError(f"{len(texts)} train prompts but {len(lengths)} train lengths")
    return texts, lengths


def jsonl(path: Path) -> tuple[list[str], np.ndarray | None]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    has = all("out_tokens" in r for r in rows)
    return [r["prompt"] for r in rows], np.array([r["out_tokens"] for r in rows]) if has else None


def heldout_sets(heldout_lengths: Path | None) -> dict[str, tuple[list[str], np.ndarray]]:
    """name -> (texts, true lengths) of every held-out set that has lengths."""
    from trail.lab.learn.testset import load_testset

    held, _, _ = load_testset()
    out = {"testset (natural, cap 512)": (held.texts, np.asarray(held.lengths))}
    texts, lengths = jsonl(SMOLLM2_ASSETS / "heldout.jsonl")
    if heldout_lengths is not None:
        by_prompt = dict(zip(*jsonl(heldout_lengths), strict=True))  # type: ignore[arg-type]
        lengths = np.array([by_prompt[t] for t in texts])
    if lengths is not None:
        out["heldout (natural, cap 512)"] = (texts, lengths)
    texts, lengths = jsonl(SMOLLM2_ASSETS / "heldout_brief.jsonl")
    assert lengths is not None
    out["heldout_brief (cap 512)"] = (texts, np.minimum(lengths, 512))
    out["heldout_brief (cap 160)"] = (texts, np.minimum(lengths, 160))
    return out


def embed(texts: list[str], encoder: str) -> np.ndarray:
    """MiniLM embeddings through the shipped adapter (`adapter`) or without it (`base`),
    cached by content."""
    from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptEncoder

    key = hashlib.sha256(("\x00".join(texts) + encoder).encode()).hexdigest()[:16]
    path = CACHE / f"{encoder}-{key}.npy"
    if path.exists():
        return np.load(path)
    adapter = DEFAULT_PROMPT_DIR / "adapter" if encoder == "adapter" else None
    emb = PromptEncoder(256, adapter).encode(texts, progress=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    return emb


def split_val(n: int, seed: int = 0, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * frac))
    return np.sort(perm[cut:]), np.sort(perm[:cut])


def ensemble(models: list[ScoreMLP], ref: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Mean of the models' scores, each standardised on the reference inputs (so that no model's
    scale dominates): one score, comparable across sets."""
    moments = [(s.mean(), s.std() + 1e-9) for s in (score(m, ref) for m in models)]
    return lambda x: np.mean(
        [(score(m, x) - mu) / sd for m, (mu, sd) in zip(models, moments, strict=True)], axis=0
    )


@app.callback()
def main() -> None:
    """Prompt rankers trained for order (issue 35, step 3)."""


def paired_delta(
    a: np.ndarray, b: np.ndarray, true: np.ndarray, reps: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95 % paired bootstrap intervals (over requests) of tau(a) - tau(b) and of the pairwise
    accuracy's difference."""
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(reps):
        i = rng.integers(0, len(true), len(true))
        d.append(
            (
                kendall_tau(a[i], true[i]) - kendall_tau(b[i], true[i]),
                pairwise_accuracy(a[i], true[i]) - pairwise_accuracy(b[i], true[i]),
            )
        )
    lo, hi = np.percentile(np.array(d), [2.5, 97.5], axis=0)
    return {
        "d_tau_ci": [round(float(lo[0]), 4), round(float(hi[0]), 4)],
        "d_pair_ci": [round(float(lo[1]), 4), round(float(hi[1]), 4)],
    }


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)


@app.command()
def run(  # noqa: PLR0913
    loss: Annotated[str, typer.Option(help="ranknet | hinge | listnet")] = "ranknet",
    encoder: Annotated[str, typer.Option(help="adapter (shipped LoRA) | base")] = "adapter",
    margin: Annotated[float, typer.Option(help="pairs differ by more tokens")] = 32.0,
    epochs: int = 5,
    lr: float = 1e-3,
    width: int = 256,
    seeds: Annotated[str, typer.Option(help="one model per seed, scores averaged")] = "0,1,2,3,4",
    groups: Annotated[int, typer.Option(help="score -> distribution: anchor groups")] = 8,
    heldout_lengths: Annotated[
        Path | None, typer.Option(help="JSONL with out_tokens for heldout.jsonl's prompts")
    ] = None,
    out: Path = Path("runs/rank_prompt.json"),
) -> None:
    """Train the ranker on cached embeddings; tau / pairwise beside the shipped head."""
    from trail.predict.prompt import PromptPredictor

    torch.set_num_threads(1)
    t0 = time.monotonic()
    texts, lengths = train_prompts()
    x = embed(texts, encoder)
    sets = heldout_sets(heldout_lengths)
    held_x = {name: embed(t, encoder) for name, (t, _) in sets.items()}
    head = PromptPredictor.load()
    head_x = {name: embed(t, "adapter") for name, (t, _) in sets.items()}
    t_data = time.monotonic() - t0
    tr, va = split_val(len(texts))
    t1 = time.monotonic()
    recipe = RankRecipe(loss=loss, margin=margin, epochs=epochs, lr=lr, width=width)
    models, val_taus = [], []
    for seed in [int(s) for s in seeds.split(",")]:
        res = train_ranker(x[tr], lengths[tr], x[va], lengths[va], replace(recipe, seed=seed))
        models.append(res.model)
        val_taus.append(round(res.val_tau, 4))
        typer.echo(f"seed {seed}: best epoch {res.best_epoch}, val tau {res.val_tau:.4f}")
    t_train = time.monotonic() - t1
    ens = ensemble(models, x[va])
    to_dist = ScoreToDist.fit(ens(x[va]), lengths[va], head.bins, groups)  # out of sample
    table: dict[str, dict] = {}
    for name, (_, true) in sets.items():
        shipped = np.asarray(head.bins.expected(head.dist_from_embeddings(head_x[name])))
        held = ens(held_x[name])
        both = ranks(shipped) + ranks(held)
        table[name] = {
            "shipped head E[L]": rank_metrics(shipped, true),
            "ranker (seed 0 alone)": rank_metrics(score(models[0], held_x[name]), true),
            "ranker (seed ensemble)": rank_metrics(held, true) | paired_delta(held, shipped, true),
            "ranker -> dist E[L]": rank_metrics(
                np.asarray(head.bins.expected(to_dist.dist(held))), true
            ),
            "mean rank (head, ranker)": rank_metrics(both, true)
            | paired_delta(both, shipped, true),
        }
    report = {
        "recipe": asdict(recipe),
        "encoder": encoder,
        "seeds": seeds,
        "train": int(len(tr)),
        "val": int(len(va)),
        "val_tau": val_taus,
        "anchors": {
            "centres": to_dist.centres.round(4).tolist(),
            "expected": (to_dist.hist @ head.bins.midpoints).round(1).tolist(),
        },
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1)},
        "sets": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    echo_table(report)


def echo_table(report: dict) -> None:
    typer.echo(f"train {report['train']}, val {report['val']}; {report['seconds']}")
    for name, rows in report["sets"].items():
        for label, m in rows.items():
            ci = f"  d_tau {m['d_tau_ci']} d_pair {m['d_pair_ci']}" if "d_tau_ci" in m else ""
            typer.echo(
                f"{name:<27} {label:<25} tau {m['tau']:.4f} pairwise {m['pairwise']:.4f} "
                f"n {m['n']}{ci}"
            )


if __name__ == "__main__":
    app()
