"""PNG plots of the evaluation (the paper's Figs. 2-4), matplotlib Agg, no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trail.predict.bins import LengthBins  # noqa: E402

LABELS = {
    "mean": "training mean",
    "prompt": "prompt only (MiniLM)",
    "probe": "probe only",
    "refined": "probe + Bayes",
}


def plot_layers(sweep: list[dict], chosen: int, path: Path) -> None:
    """MAE of a probe trained on each layer (Fig. 2)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    layers = [r["layer"] for r in sweep]
    ax.plot(layers, [r["val_mae"] for r in sweep], "o-", label="validation")
    ax.plot(layers, [r["test_mae"] for r in sweep], "s--", label="test", alpha=0.7)
    ax.axvline(chosen, color="grey", ls=":", label=f"chosen layer {chosen}")
    ax.set(xlabel="decoder layer (0-based)", ylabel="MAE remaining tokens", title="MAE vs layer")
    ax.legend()
    _save(fig, path)


def plot_progress(table: dict, path: Path) -> None:
    """MAE vs decode progress for each predictor (Fig. 3)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = table["progress"]
    for key, label in LABELS.items():
        y = [np.nan if v is None else v for v in table[key]]
        ax.plot(x, y, "o-", label=label)
    ax.set(xlabel="progress (generated / total)", ylabel="MAE remaining tokens")
    ax.set_title("MAE vs decode progress (test split)")
    ax.legend()
    _save(fig, path)


def plot_confusion(counts: np.ndarray, bins: LengthBins, path: Path) -> None:
    """Row-normalised true-bin vs predicted-bin heatmap of the refined predictor (Fig. 4)."""
    frac = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(frac, cmap="viridis", vmin=0, vmax=1, origin="lower")
    names = [f"{int(a)}-{int(b)}" for a, b in zip(bins.edges, bins.edges[1:], strict=False)]
    ax.set_xticks(range(bins.k), names, rotation=60, fontsize=7)
    ax.set_yticks(range(bins.k), names, fontsize=7)
    ax.set(xlabel="predicted bin (refined, argmax)", ylabel="true bin (remaining tokens)")
    fig.colorbar(im, ax=ax, label="fraction of true bin")
    _save(fig, path)


def plot_lengths(lengths: np.ndarray, bins: LengthBins, path: Path) -> None:
    """Histogram of natural output lengths with the chosen bin edges."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(lengths, bins=64, color="tab:blue", alpha=0.8)
    for e in bins.edges:
        ax.axvline(e, color="tab:red", lw=0.8, ls=":")
    ax.set(xlabel="output tokens (EOS included; cap = last edge)", ylabel="requests")
    ax.set_title("SmolLM2 output lengths on ShareGPT, with bin edges")
    _save(fig, path)


def _save(fig, path: Path) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
