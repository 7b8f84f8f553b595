"""Shards as memory-mapped .npy files: what is read equals what was written (also from the older
.npz shards, and after upgrading them), the loader hands out every row once per epoch, and
training memory does not grow with the number of shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trail.lab.learn.loader import ShardedRows
from trail.lab.learn.shards import (
    legacy_shards,
    load_dense,
    load_profile,
    shard_name,
    upgrade_profile,
    write_manifest,
    write_shard,
)
from trail.lab.learn.train import Standardiser

LAYERS, HIDDEN = [4, 8, 12], 6


def shard_arrays(rng: np.random.Generator, n_requests: int, first: int) -> tuple[list, dict]:
    """Requests of known lengths with sampled and dense rows; vectors encode (shard row, layer)."""
    requests, parts = [], {k: [] for k in ("req", "steps", "labels", "dense_req", "dense_steps")}
    for j in range(n_requests):
        length = int(rng.integers(3, 40))
        split = ("test", "val", "train", "train")[(first + j) % 4]
        steps = np.concatenate([[0], np.sort(rng.choice(np.arange(1, length), 2, replace=False))])
        requests.append({"id": f"r{first + j}", "split": split, "length": length, "text": "t"})
        requests[-1] |= {"prompt_ids": [1, 2], "output_ids": list(range(length))}
        parts["req"].append(np.full(len(steps), j))
        parts["steps"].append(steps)
        parts["labels"].append(length - steps)
        parts["dense_req"].append(np.full(length, j))
        parts["dense_steps"].append(np.arange(length))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["vectors"] = rng.normal(size=(len(out["req"]), len(LAYERS), HIDDEN)).astype(np.float16)
    out["dense_vectors"] = rng.normal(size=(len(out["dense_req"]), len(LAYERS), HIDDEN)).astype(
        np.float16
    )
    return requests, out


def make_profile(root: Path, shards: int = 3, legacy: bool = False) -> list[dict]:
    """A profile of `shards` shards (in the .npz format with `legacy`); their arrays."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    written = []
    for i in range(shards):
        requests, arrays = shard_arrays(rng, 8, 8 * i)
        if legacy:
            np.savez(root / f"{shard_name(i)}.npz", **arrays)
            (root / f"{shard_name(i)}.json").write_text(json.dumps(requests) + "\n")
        else:
            write_shard(root, i, requests, arrays)
        written.append(arrays)
    settings = {"cap": 64, "model": "fake", "layers": LAYERS}
    write_manifest(root, {"settings": settings, "done": list(range(shards)), "seconds": {}})
    return written


def test_a_shard_is_a_folder_with_one_file_per_array_and_layer(tmp_path: Path) -> None:
    make_profile(tmp_path / "p", shards=1)
    names = sorted(p.name for p in (tmp_path / "p" / "shard_00000").iterdir())
    assert names == sorted(
        ["req.npy", "steps.npy", "labels.npy", "dense_req.npy", "dense_steps.npy"]
        + [f"{k}.{a}.npy" for k in ("vectors", "dense_vectors") for a in range(len(LAYERS))]
    )
    assert not [p for p in (tmp_path / "p").iterdir() if "tmp" in p.name]
    mapped = np.load(tmp_path / "p" / "shard_00000" / "vectors.1.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float16


@pytest.mark.parametrize("legacy", [False, True])
def test_rows_read_back_as_written(tmp_path: Path, legacy: bool) -> None:
    written = make_profile(tmp_path / "p", legacy=legacy)
    every = np.concatenate([w["vectors"] for w in written])
    data = load_profile(tmp_path / "p")
    assert data.vectors.shape == every.shape and data.layers == LAYERS
    assert np.array_equal(np.asarray(data.vectors), every)
    rows = np.array([17, 2, 40, 3, 2])  # any order, repeats, across shards
    assert np.array_equal(data.vectors[rows], every[rows])
    assert np.array_equal(data.vectors[rows, 2], every[rows, 2])
    assert np.array_equal(data.vectors[:, 1][rows], every[rows, 1])
    assert np.array_equal(data.labels, np.concatenate([w["labels"] for w in written]))
    assert "output_ids" not in data.requests[0]  # token ids are not needed to train
    one = load_profile(tmp_path / "p", [8])
    assert one.vectors.shape == (len(every), HIDDEN)
    assert np.array_equal(one.vectors[rows], every[rows, 1])
    requests, dense = load_dense(tmp_path / "p", 12, "test")
    assert [len(v) for v in dense] == [r["length"] for r in requests]
    assert np.array_equal(dense[0], written[0]["dense_vectors"][: requests[0]["length"], 2])


def test_upgrading_npz_shards_keeps_every_array(tmp_path: Path) -> None:
    make_profile(tmp_path / "p", legacy=True)
    before = load_profile(tmp_path / "p")
    assert legacy_shards(tmp_path / "p") == [0, 1, 2]
    assert list(upgrade_profile(tmp_path / "p")) == [0, 1, 2]
    assert legacy_shards(tmp_path / "p") == [] and not list((tmp_path / "p").glob("*.npz"))
    after = load_profile(tmp_path / "p")
    assert np.array_equal(np.asarray(after.vectors), np.asarray(before.vectors))
    assert after.requests == before.requests
    raw = json.loads((tmp_path / "p" / "shard_00000.json").read_text())
    assert "output_ids" in raw[0]  # the shard's records are rewritten whole


def test_the_loader_hands_out_every_row_once_per_epoch(tmp_path: Path) -> None:
    written = make_profile(tmp_path / "p", shards=4)
    data = load_profile(tmp_path / "p")
    train = data.split_rows("train")
    every = np.concatenate([w["vectors"] for w in written])[train, 1].astype(np.float32)
    # a buffer of ~6 rows: blocks of one row, groups of a few blocks from any shard
    rows = ShardedRows(data, 8, "train", cap=64, buffer_mb=6 * 4 * (HIDDEN + 2) / 2**20, mix=3)
    assert len(rows.blocks) > len(written) and len(rows) == len(train)
    gen = torch.Generator().manual_seed(0)
    seen, sizes = [], []
    for x, pos in rows.batches(4, gen, torch.device("cpu")):
        seen.append(pos.numpy())
        sizes.append(len(pos))
        assert np.array_equal(x[:, :HIDDEN].numpy(), every[pos.numpy()])
        assert np.allclose(x[:, HIDDEN].numpy(), data.steps[train][pos.numpy()] / 64)
    assert sorted(np.concatenate(seen)) == list(range(len(train)))
    assert all(s == 4 for s in sizes[:-1])  # rows left over from a group open the next
    again = np.concatenate([p.numpy() for _, p in rows.batches(4, gen, torch.device("cpu"))])
    assert not np.array_equal(again, np.concatenate(seen))  # a new order each epoch
    chunks = torch.cat(list(rows.chunks(torch.device("cpu"))))
    streamed, direct = rows.standardiser(), Standardiser.fit(chunks)
    torch.testing.assert_close(streamed.mean, direct.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(streamed.std, direct.std, rtol=1e-4, atol=1e-5)


def test_training_peak_memory_does_not_grow_with_the_shards(tmp_path: Path) -> None:
    """4 vs 12 shards of SmolLM2's shape (32 requests each, 8 MB row buffer): the vectors grow
    by ~80 MB (whole-shard concatenation held all of them); peak memory by a few MB."""
    from tests.predict.measure_training_memory import measure

    small, large = (measure(n, tmp_path, 32, False, 8) for n in (4, 12))
    grown = large["peak_rss_mb"] - small["peak_rss_mb"]
    data_grown = (large["rows"] - small["rows"]) * 9 * 576 * 2 / 2**20
    assert data_grown > 70
    assert grown < 25, (small, large)
    print(f"peak RSS {small['peak_rss_mb']} -> {large['peak_rss_mb']} MB")
