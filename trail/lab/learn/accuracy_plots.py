"""PNG plots of the evaluation (the paper's Figs. 2-4), matplotlib Agg, no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trail.predict.bins import LengthBins  # noqa: E402

LABELS = {
    "constant": "best constant (train median)",
    "prompt": "prompt only (MiniLM)",
    "probe": "probe only",
    "refined": "probe + Bayes (served cadence)",
}


def plot_layers(sweep: list[dict], chosen: int, path: Path) -> None:
    """MAE of a probe trained on each candidate layer (Fig. 2)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    layers = [r["layer"] for r in sweep]
    ax.plot(layers, [r["val_mae"] for r in sweep], "o-", label="validation")
    ax.plot(layers, [r["test_mae"] for r in sweep], "s--", label="test", alpha=0.7)
    ax.axvline(chosen, color="grey", ls=":", label=f"chosen layer {chosen}")
    ax.set(xlabel="decoder layer (0-based)", ylabel="MAE remaining tokens", title="MAE vs layer")
    ax.legend()
    _save(fig, path)


def plot_positions(tables: dict, path: Path) -> None:
    """MAE and Kendall tau of each predictor vs decode position g (test split, every step)."""
    keys = sorted((k for k in tables if k.startswith("g=")), key=lambda k: int(k[2:]))
    x = [int(k[2:]) for k in keys]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, label in LABELS.items():
        axes[0].plot(x, [tables[k][name]["mae"] for k in keys], "o-", label=label)
        axes[1].plot(x, [tables[k][name]["kendall_tau"] for k in keys], "o-", label=label)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("decode position g (tokens generated)")
    axes[0].set(ylabel="MAE remaining tokens", title="MAE vs position")
    axes[1].set(ylabel="Kendall tau (pred vs true remaining)", title="ranking vs position")
    axes[1].legend(fontsize=8)
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
