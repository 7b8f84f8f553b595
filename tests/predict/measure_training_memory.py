"""Peak memory of `trail train probe` as shards are added, on synthetic shards of SmolLM2's shape
(hidden 576, the 9 candidate layers, 256 requests a shard, step 0 + 32 random steps a request).

    python tests/predict/measure_training_memory.py --table 2 4 8 --root /tmp/mem
    python tests/predict/measure_training_memory.py --table 2 4 8 --root /tmp/mem --old /tmp/head

One subprocess per profile (peak RSS only grows within a process). `--old DIR` also runs the
trainer of a checkout at DIR (e.g. `git archive HEAD trail | tar -x -C DIR`) on .npz shards of the
same rows, for comparison. The dense val/test arrays are left out: training never reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

HIDDEN = 576
LAYER_IDS = [6, 9, 12, 15, 17, 19, 21, 24, 27]  # profile.py's CANDIDATE_LAYERS
SIGNAL_AXIS = 5  # layer 19 carries the remaining length
CAP = 512


def split_of(index: int) -> str:
    return "test" if index % 10 == 0 else "val" if index % 10 == 1 else "train"


def shard_rows(shard: int, requests: int, positions: int = 32) -> tuple[list[dict], dict]:
    """One shard's requests and arrays, shaped as profile.py writes them."""
    rng = np.random.default_rng(shard)
    reqs, parts = [], {"req": [], "steps": [], "labels": [], "vectors": []}
    for j in range(requests):
        index = shard * requests + j
        length = int(min(CAP, rng.integers(8, 700)))
        split = split_of(index)
        decode = np.arange(1, length)
        if split == "test":
            chosen = decode[(decode - 1) % 16 == 0]
        else:
            chosen = np.sort(rng.choice(decode, min(positions, len(decode)), replace=False))
        steps = np.concatenate([[0], chosen]).astype(np.int64)
        vec = rng.standard_normal((len(steps), len(LAYER_IDS), HIDDEN), dtype=np.float32)
        vec[:, SIGNAL_AXIS, 0] = (length - steps) / 100.0
        reqs.append(
            {
                "index": index,
                "id": f"r{index}",
                "text": "a synthetic prompt " * 20,
                "split": split,
                "length": length,
                "prompt_ids": list(range(100)),
                "output_ids": list(range(length)),
            }
        )
        parts["req"].append(np.full(len(steps), j))
        parts["steps"].append(steps)
        parts["labels"].append(length - steps)
        parts["vectors"].append(vec.astype(np.float16))
    return reqs, {k: np.concatenate(v) for k, v in parts.items()}


def write_profile(root: Path, shards: int, requests: int, legacy: bool, model: str) -> None:
    """A finished profile of `shards` shards (.npz files with `legacy`); the manifest also
    counts the rows."""
    from trail.lab.learn.shards import shard_name, write_manifest, write_shard

    root.mkdir(parents=True, exist_ok=True)
    rows = 0
    for i in range(shards):
        reqs, arrays = shard_rows(i, requests)
        rows += len(arrays["req"])
        if legacy:
            np.savez(root / f"{shard_name(i)}.npz", **arrays)
            (root / f"{shard_name(i)}.json").write_text(json.dumps(reqs) + "\n")
        else:
            write_shard(root, i, reqs, arrays)
    settings = {"model": model, "cap": CAP, "layers": LAYER_IDS, "shard_size": requests}
    manifest = {"settings": settings, "done": list(range(shards)), "seconds": {}, "rows": rows}
    write_manifest(root, manifest)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train(root: Path, out: Path, sweep: bool, buffer_mb: float | None) -> dict:
    """`trail train probe` in this process (1 epoch: memory does not depend on epochs)."""
    import torch  # noqa: F401 - imported before the baseline is taken
    from typer.testing import CliRunner

    from trail.cli import train as train_cli

    train_cli.SWEEP_RECIPE = {"epochs": 1, "batch": 256}
    baseline = peak_rss_mb()
    args = ["probe", "--profile", str(root), "--out", str(out), "--epochs", "1"]
    args += ["--sweep"] if sweep else ["--layer", str(LAYER_IDS[SIGNAL_AXIS])]
    if buffer_mb is not None:
        args += ["--buffer-mb", str(buffer_mb)]
    result = CliRunner().invoke(train_cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {"rss_after_imports_mb": round(baseline, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure(  # noqa: PLR0913
    shards: int,
    root: Path,
    requests: int,
    sweep: bool,
    buffer_mb: float | None,
    code: Path | None = None,
) -> dict:
    """Peak RSS of one training run in a fresh process (`code`: another checkout's trainer,
    on .npz shards)."""
    legacy = code is not None
    folder = root / f"{'npz' if legacy else 'npy'}-{shards}x{requests}"
    this_code = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, __file__, "--root", str(folder), "--requests", str(requests)]
    if not (folder / "manifest.json").exists():  # written in its own process: not measured
        _run([*cmd, "--write", str(shards)] + (["--legacy"] if legacy else []), this_code)
    cmd += ["--one", str(shards)] + (["--sweep"] if sweep else [])
    cmd += [] if buffer_mb is None else ["--buffer-mb", str(buffer_mb)]
    return json.loads(_run(cmd, code or this_code).strip().splitlines()[-1])


def _run(cmd: list[str], code: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    return done.stdout


def run_one(args: argparse.Namespace) -> None:
    """Train on the profile at --root; print the row count and peak memory."""
    root = Path(args.root)
    manifest = json.loads((root / "manifest.json").read_text())
    rows = manifest["rows"]
    out = train(root, root / "probe", args.sweep, args.buffer_mb)
    print(json.dumps({"shards": args.one, "rows": rows, **out}))


def write_one(args: argparse.Namespace) -> None:
    from trail.models.paths import smollm2_dir

    write_profile(Path(args.root), args.write, args.requests, args.legacy, str(smollm2_dir()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--table", type=int, nargs="*", help="shard counts to measure")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--write", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", required=True)
    p.add_argument("--requests", type=int, default=256, help="requests per shard")
    p.add_argument("--sweep", action="store_true", help="train every layer (1 epoch each)")
    p.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--buffer-mb", type=float, default=None)
    p.add_argument("--old", type=Path, help="also measure the trainer of this checkout")
    args = p.parse_args()
    if args.write is not None:
        write_one(args)
        return
    if args.one is not None:
        run_one(args)
        return
    for n in args.table or [2, 4, 8]:
        row = measure(n, Path(args.root), args.requests, args.sweep, args.buffer_mb)
        print(json.dumps({"code": "new", **row}), flush=True)
        if args.old is not None:
            old = measure(n, Path(args.root), args.requests, args.sweep, None, args.old)
            print(json.dumps({"code": "old", **old}), flush=True)


if __name__ == "__main__":
    main()
