"""Profile shards on disk, and a `manifest.json` holding the run's settings and the finished
shards, so a run can resume.

A shard is `shard_XXXXX.json` (its requests) and the folder `shard_XXXXX/` (its rows), one
`.npy` file per array so that training memory-maps them instead of loading whole shards:

- `req.npy`, `steps.npy`, `labels.npy`: the sampled rows (request within the shard, step g,
  remaining length L - g);
- `vectors.A.npy` [rows, H] float16: those rows' hidden states at layer axis A (the A-th of the
  manifest's `settings.layers`): one file per layer, so a layer sweep reads one file per shard;
- `dense_req.npy`, `dense_steps.npy`, `dense_vectors.A.npy`: every step of the val/test
  requests, so evaluation can replay refinement at the served cadence.

Profiles written before this format hold `shard_XXXXX.npz` (the same arrays, vectors as
[rows, layers, H]); readers still take them, and `upgrade_profile` (run by `trail train`, or
`python -m trail.lab.learn.shards upgrade PROFILE`) rewrites them in place, one shard at a time.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
LAYERED = ("vectors", "dense_vectors")  # arrays with a layer axis: one file per layer
HEAVY_REQUEST_KEYS = ("prompt_ids", "output_ids")  # not needed to train: dropped on load
DEFAULT_BUFFER_MB = 256  # rows a training loader holds in memory at a time (loader.py)


def shard_name(i: int) -> str:
    return f"shard_{i:05d}"


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write atomically so a killed run never leaves a half-written manifest."""
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / MANIFEST)


def write_shard(root: Path, i: int, requests: list[dict], arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays as `.npy` files into a hidden folder, then rename it into place: a
    killed run leaves no half-written shard under the shard's name."""
    name = shard_name(i)
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, array in arrays.items():
        _save_array(tmp, key, array)
    shutil.rmtree(root / name, ignore_errors=True)
    tmp.replace(root / name)
    (root / f"{name}.json").write_text(json.dumps(requests) + "\n")


def _save_array(folder: Path, key: str, array: np.ndarray) -> None:
    if key not in LAYERED:
        np.save(folder / f"{key}.npy", array)
        return
    for axis in range(array.shape[1]):
        np.save(folder / f"{key}.{axis}.npy", np.ascontiguousarray(array[:, axis]))


@dataclass(frozen=True)
class Shard:
    """One finished shard's files; layer arrays are memory-mapped on each read and released
    after it, so pages read once do not stay in the process's memory."""

    root: Path
    index: int

    @property
    def folder(self) -> Path:
        return self.root / shard_name(self.index)

    @property
    def npz(self) -> Path:
        return self.root / f"{shard_name(self.index)}.npz"

    @property
    def legacy(self) -> bool:
        """Written before the .npy format (one .npz)."""
        return not self.folder.is_dir() and self.npz.exists()

    def requests(self) -> list[dict]:
        reqs = json.loads((self.root / f"{shard_name(self.index)}.json").read_text())
        return [{k: v for k, v in r.items() if k not in HEAVY_REQUEST_KEYS} for r in reqs]

    def array(self, key: str) -> np.ndarray:
        """A small per-row array (req, steps, labels, dense_req, dense_steps), loaded."""
        if self.legacy:
            with np.load(self.npz) as z:
                return z[key]
        return np.load(self.folder / f"{key}.npy")

    def layer(self, key: str, axis: int) -> np.ndarray:
        """[rows, H] of `key` ("vectors" or "dense_vectors") at layer axis `axis`: a read-only
        memmap (a legacy shard: that layer's slice, loaded)."""
        if self.legacy:
            with np.load(self.npz) as z:
                return np.ascontiguousarray(z[key][:, axis])
        return np.load(self.folder / f"{key}.{axis}.npy", mmap_mode="r")

    def gather(self, key: str, axis: int, local: np.ndarray) -> np.ndarray:
        """Rows `local` (indices within the shard) of one layer, read in file order."""
        mapped = self.layer(key, axis)
        order = np.argsort(local, kind="stable")
        out = np.empty((len(local), mapped.shape[1]), dtype=mapped.dtype)
        out[order] = mapped[local[order]]
        del mapped  # unmap now: the pages read leave this process's resident memory
        return out


@dataclass(frozen=True)
class RowBlock:
    """Rows of one shard at one layer, read in one go: a data loader's unit of disk reads."""

    shard: Shard
    axis: int
    local: np.ndarray  # sorted row indices within the shard

    def __len__(self) -> int:
        return len(self.local)

    def read(self) -> np.ndarray:
        return self.shard.gather("vectors", self.axis, self.local)


@dataclass
class ShardedVectors:
    """The sampled rows' hidden states across shards, [rows, layers, H] ([rows, H] for one
    layer), read from disk when indexed: `v[rows]`, `v[rows, a]`, `v[:, a]` (lazy), or
    `np.asarray(v)` (everything, in memory)."""

    shards: list[Shard]
    offsets: np.ndarray  # first global row of each shard, then the total
    axes: list[int]  # file layer axis of each selected layer
    hidden: int
    dtype: np.dtype
    squeeze: bool = False  # one layer, shown as [rows, H]

    @property
    def shape(self) -> tuple[int, ...]:
        rows = int(self.offsets[-1])
        return (rows, self.hidden) if self.squeeze else (rows, len(self.axes), self.hidden)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: Any) -> Any:
        rows, axis = key if isinstance(key, tuple) else (key, None)
        if isinstance(rows, slice) and rows == slice(None) and axis is not None:
            one = [self.axes[axis]]
            return ShardedVectors(self.shards, self.offsets, one, self.hidden, self.dtype, True)
        index = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        if axis is not None:
            return self.take(index, [self.axes[axis]])[:, 0]
        out = self.take(index, self.axes)
        return out[:, 0] if self.squeeze else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def take(self, rows: np.ndarray, axes: list[int]) -> np.ndarray:
        """[len(rows), len(axes), H] of global rows (any order), shard by shard."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), len(axes), self.hidden), dtype=self.dtype)
        owner = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(owner):
            where = np.flatnonzero(owner == s)
            local = rows[where] - self.offsets[s]
            for j, axis in enumerate(axes):
                out[where, j] = self.shards[s].gather("vectors", axis, local)
        return out

    def blocks(self, axis: int, rows: np.ndarray, max_rows: int) -> list[RowBlock]:
        """Sorted global `rows` at file layer axis `axis`, as blocks of at most `max_rows` rows
        of one shard each, in row order."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        owner = np.searchsorted(self.offsets, rows, side="right") - 1
        out = []
        for s in np.unique(owner):
            local = rows[owner == s] - self.offsets[s]
            out += [
                RowBlock(self.shards[s], axis, local[i : i + max_rows])
                for i in range(0, len(local), max_rows)
            ]
        return out


@dataclass
class ProfileData:
    """The finished shards' sampled rows: per-row metadata in memory, the hidden states on disk
    (`vectors`, read when indexed)."""

    requests: list[dict]
    row_request: np.ndarray  # index into `requests`
    steps: np.ndarray  # generated tokens so far (0 = last prompt token)
    labels: np.ndarray  # remaining tokens (total at step 0)
    vectors: ShardedVectors  # [rows, hidden] for one layer or [rows, layers, hidden]
    layers: list[int]  # layer id of each slice of the layer axis

    def split_rows(self, split: str) -> np.ndarray:
        splits = np.array([r["split"] for r in self.requests])
        return np.flatnonzero(splits[self.row_request] == split)

    def lengths(self, split: str | None = None) -> np.ndarray:
        return np.array([r["length"] for r in self.requests if split in (None, r["split"])])

    def layer_blocks(self, layer: int, rows: np.ndarray, max_rows: int) -> list[RowBlock]:
        """`rows` at layer id `layer`, in blocks of one shard each (see ShardedVectors.blocks)."""
        return self.vectors.blocks(self.vectors.axes[self.layers.index(layer)], rows, max_rows)


def _layer_index(manifest: dict, layers: list[int] | None) -> tuple[list[int], list[int]]:
    have = list(manifest["settings"]["layers"])
    if layers is None:
        return have, list(range(len(have)))
    missing = [k for k in layers if k not in have]
    if missing:
        raise ValueError(f"layers {missing} were not captured; the profile holds {have}")
    return list(layers), [have.index(k) for k in layers]


def _finished(root: Path) -> tuple[dict, list[Shard]]:
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no profile at {root}: run `trail profile` first")
    return manifest, [Shard(root, int(i)) for i in sorted(int(i) for i in manifest["done"])]


def load_profile(root: Path, layers: list[int] | None = None) -> ProfileData:
    """The finished shards' rows; `layers` (ids) selects layers (None: all captured). Only the
    per-row metadata is read now; the vectors stay on disk until indexed."""
    manifest, shards = _finished(root)
    ids, axes = _layer_index(manifest, layers)
    requests: list[dict] = []
    parts: dict[str, list[np.ndarray]] = {"req": [], "steps": [], "labels": []}
    for shard in shards:
        parts["req"].append(shard.array("req") + len(requests))
        parts["steps"].append(shard.array("steps"))
        parts["labels"].append(shard.array("labels"))
        requests.extend(shard.requests())
    sizes = [len(r) for r in parts["req"]]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    hidden, dtype = _vector_layout(shards)
    squeeze = layers is not None and len(layers) == 1
    vectors = ShardedVectors(shards, offsets, axes, hidden, dtype, squeeze)
    cat = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    return ProfileData(requests, cat["req"], cat["steps"], cat["labels"], vectors, ids)


def _vector_layout(shards: list[Shard]) -> tuple[int, np.dtype]:
    """Hidden size and stored dtype of the vectors (from the first shard's header)."""
    if not shards:
        return 0, np.dtype(np.float16)
    first = shards[0].layer("vectors", 0)
    return int(first.shape[1]), first.dtype


def load_dense(root: Path, layer: int, split: str) -> tuple[list[dict], list[np.ndarray]]:
    """Every step of the `split` requests at one layer: requests and one [L, H] array each."""
    manifest, shards = _finished(root)
    _, (axis,) = _layer_index(manifest, [layer])
    requests: list[dict] = []
    vectors: list[np.ndarray] = []
    for shard in shards:
        req, steps = shard.array("dense_req"), shard.array("dense_steps")
        mapped = shard.layer("dense_vectors", axis)
        for j, r in enumerate(shard.requests()):
            if r["split"] != split:
                continue
            rows = np.flatnonzero(req == j)
            rows = rows[np.argsort(steps[rows])]
            if len(rows) != r["length"] or steps[rows[0]] != 0:
                raise ValueError(f"shard {shard.index} request {j}: dense rows do not cover 0..L-1")
            requests.append(r)
            vectors.append(np.asarray(mapped[rows]))
        del mapped
    return requests, vectors


def legacy_shards(root: Path) -> list[int]:
    """Finished shards still in the .npz format."""
    _, shards = _finished(root)
    return [s.index for s in shards if s.legacy]


def upgrade_profile(root: Path) -> Iterator[int]:
    """Rewrite each .npz shard as a .npy folder (then delete the .npz), one shard in memory at a
    time; yields each shard's index as it is done. Idempotent: a rerun continues."""
    for i in legacy_shards(root):
        shard = Shard(root, i)
        with np.load(shard.npz) as z:
            arrays = {k: z[k] for k in z.files}
        write_shard(root, i, json.loads((root / f"{shard_name(i)}.json").read_text()), arrays)
        shard.npz.unlink()
        yield i


def main(argv: list[str]) -> int:
    """`python -m trail.lab.learn.shards upgrade PROFILE`."""
    if len(argv) != 2 or argv[0] != "upgrade":
        print("usage: python -m trail.lab.learn.shards upgrade PROFILE", file=sys.stderr)
        return 2
    for i in upgrade_profile(Path(argv[1])):
        print(f"{shard_name(i)}: .npz -> {shard_name(i)}/ (.npy per array and layer)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
