"""The committed test set: the test split's vectors at the shipped probe's layer, with prompt
texts and true lengths, so `trail eval --shipped` reproduces the test MAE without profiling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trail.predict.evaluate import TestRows
from trail.predict.shards import load_profile

DEFAULT_TESTSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "smollm2" / "testset"
KEEP = ("index", "id", "text", "n_prompt", "length", "finish", "repeat_ratio")


def testset_from_profile(root: Path, layer: int) -> tuple[TestRows, list[dict]]:
    """The profile's test split at one layer, requests renumbered 0..n-1."""
    data = load_profile(root, [layer])
    rows = data.split_rows("test")
    old = np.unique(data.row_request[rows])
    remap = {int(o): i for i, o in enumerate(old)}
    requests = [{k: data.requests[o][k] for k in KEEP} for o in old]
    t = TestRows(
        row_request=np.array([remap[int(r)] for r in data.row_request[rows]], dtype=np.int64),
        steps=data.steps[rows],
        labels=data.labels[rows],
        vectors=np.asarray(data.vectors[rows], dtype=np.float16),
        lengths=np.array([r["length"] for r in requests]),
        texts=[r["text"] for r in requests],
    )
    return t, requests


def write_testset(directory: Path, t: TestRows, requests: list[dict], layer: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        directory / "rows.npz",
        row_request=t.row_request,
        steps=t.steps,
        labels=t.labels,
        vectors=t.vectors.astype(np.float16),
    )
    meta = {"layer": layer, "requests": requests}
    (directory / "requests.json").write_text(json.dumps(meta, indent=1) + "\n")


def load_testset(directory: Path = DEFAULT_TESTSET_DIR) -> tuple[TestRows, int]:
    meta = json.loads((directory / "requests.json").read_text())
    with np.load(directory / "rows.npz") as z:
        t = TestRows(
            row_request=z["row_request"],
            steps=z["steps"],
            labels=z["labels"],
            vectors=z["vectors"],
            lengths=np.array([r["length"] for r in meta["requests"]]),
            texts=[r["text"] for r in meta["requests"]],
        )
    return t, int(meta["layer"])
