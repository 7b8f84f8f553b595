"""`trail train probe --sweep` end to end on a small synthetic profile (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trail.cli.train import app
from trail.lab.learn.shards import load_profile, write_manifest, write_shard
from trail.lab.workload.sharegpt import split_of
from trail.predict.probe import ProbeBundle

LAYER_IDS, HIDDEN = [3, 7, 11], 8  # the captured layers' ids (not 0..n-1)
LAYERS = len(LAYER_IDS)


def fake_profile(root: Path, n: int = 120, seed: int = 0) -> None:
    """Layer 7 (axis 1) carries the remaining length in feature 0; layers 3 and 11 are noise."""
    rng = np.random.default_rng(seed)
    requests, parts = [], {"req": [], "steps": [], "labels": [], "vectors": []}
    for i in range(n):
        length = int(rng.integers(2, 256))
        steps = np.concatenate(
            [[0], np.sort(rng.choice(np.arange(1, length), min(8, length - 1), replace=False))]
        )
        labels = length - steps
        vec = rng.normal(size=(len(steps), LAYERS, HIDDEN))
        vec[:, 1, 0] = labels / 50.0
        requests.append(
            {"index": i, "id": f"r{i}", "text": "t", "split": split_of(i), "length": length}
        )
        parts["req"].append(np.full(len(steps), i))
        parts["steps"].append(steps)
        parts["labels"].append(labels)
        parts["vectors"].append(vec.astype(np.float16))
    root.mkdir(parents=True, exist_ok=True)
    write_shard(root, 0, requests, {k: np.concatenate(v) for k, v in parts.items()})
    settings = {"cap": 256, "model": "fake", "layers": LAYER_IDS}
    write_manifest(root, {"settings": settings, "done": [0], "seconds": {}})


def test_sweep_picks_the_informative_layer(tmp_path: Path) -> None:
    fake_profile(tmp_path / "profile")
    out = tmp_path / "assets" / "probe"
    args = [
        "probe",
        "--sweep",
        "--k",
        "6",
        "--profile",
        str(tmp_path / "profile"),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep = json.loads((out.parent / "sweep.json").read_text())
    assert [r["layer"] for r in sweep] == LAYER_IDS
    assert min(sweep, key=lambda r: r["val_mae"])["layer"] == 7
    bundle = ProbeBundle.load(out)
    assert bundle.layer == 7 and bundle.bins.k <= 6 and bundle.bins.edges[-1] == 256
    # the informative layer beats the best constant (the training median) by far
    data = load_profile(tmp_path / "profile", [7])
    test = data.labels[data.split_rows("test")]
    constant = np.abs(test - np.median(data.labels[data.split_rows("train")])).mean()
    assert bundle.card["test_mae"] < 0.5 * constant
    assert sum(bundle.card["train_bin_rate"]) == pytest.approx(1.0)
