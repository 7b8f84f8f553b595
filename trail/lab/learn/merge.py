"""`trail profile merge`: unite profiles of disjoint shard ranges into one.

GPUs or nodes profile slices of one seeded prompt order (`trail profile --shard-range A:B`);
shard indices are global, so a merge only gathers the shard files (hard links where the
filesystem allows, else copies) and writes a manifest whose `done` and `seconds` are the unions.
Profiles made with other settings would mix incomparable rows and two copies of one shard would
count its requests twice: both are refused before anything is written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from trail.lab.learn.shards import read_manifest, shard_name, write_manifest


class MergeRefused(ValueError):
    """The inputs cannot be united into one profile."""


def shard_paths(root: Path, i: int) -> list[Path]:
    """Every file or folder of shard i: its name is shard_XXXXX, alone or followed by a
    non-digit (so shard 1 never claims shard 10's files, nor shard_00001 shard_000010's)."""
    stem = shard_name(i)
    return sorted(
        p
        for p in root.iterdir()
        if p.name.startswith(stem)
        and (len(p.name) == len(stem) or not p.name[len(stem)].isdigit())
        and ".tmp" not in p.name[len(stem) :]
    )


def read_inputs(inputs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    manifests = []
    for root in inputs:
        manifest = read_manifest(root)
        if manifest is None:
            raise MergeRefused(f"{root} holds no profile (no manifest.json)")
        manifests.append((root, manifest))
    return manifests


def check_same_settings(manifests: list[tuple[Path, dict[str, Any]]]) -> None:
    """Every input must have been profiled with the first one's settings, key for key."""
    first_root, first = manifests[0]
    for root, manifest in manifests[1:]:
        a, b = first["settings"], manifest["settings"]
        differ = sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
        if differ:
            detail = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differ)
            raise MergeRefused(
                f"{first_root} and {root} were profiled with other settings ({detail}): "
                "their rows cannot be merged; profile the missing shards with equal settings"
            )


def check_disjoint(manifests: list[tuple[Path, dict[str, Any]]]) -> None:
    """A shard finished in two inputs would be counted twice (and the copies may differ)."""
    owner: dict[int, Path] = {}
    for root, manifest in manifests:
        for i in manifest["done"]:
            if int(i) in owner:
                raise MergeRefused(
                    f"shard {i} is finished in both {owner[int(i)]} and {root}: shard ranges "
                    "overlap; merge only one of them"
                )
            owner[int(i)] = root


def check_files(manifests: list[tuple[Path, dict[str, Any]]]) -> None:
    for root, manifest in manifests:
        missing = [i for i in manifest["done"] if not shard_paths(root, int(i))]
        if missing:
            raise MergeRefused(f"{root}: shards {missing} are marked done but have no files")


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (free, same filesystem), else copy; folders recursively. A leftover of an
    interrupted merge (the folder has no manifest yet) is replaced."""
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy_file)
    else:
        _link_or_copy_file(src, dst)


def _link_or_copy_file(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def merged_manifest(manifests: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """The first input's manifest with `done` and `seconds` the unions of all inputs'."""
    out = {k: v for k, v in manifests[0][1].items() if k not in ("done", "seconds")}
    out["done"] = sorted(int(i) for _, m in manifests for i in m["done"])
    seconds = [(k, v) for _, m in manifests for k, v in m.get("seconds", {}).items()]
    out["seconds"] = dict(sorted(seconds, key=lambda kv: int(kv[0])))
    return out


def merge_profiles(out: Path, inputs: list[Path]) -> dict[str, Any]:
    """Unite `inputs` into a new profile folder `out`; checks everything before writing."""
    if not inputs:
        raise MergeRefused("nothing to merge: name at least one input profile")
    if read_manifest(out) is not None:
        raise MergeRefused(f"{out} already holds a profile: merge into a new folder")
    manifests = read_inputs(inputs)
    check_same_settings(manifests)
    check_disjoint(manifests)
    check_files(manifests)
    out.mkdir(parents=True, exist_ok=True)
    for root, manifest in manifests:
        for i in manifest["done"]:
            for src in shard_paths(root, int(i)):
                link_or_copy(src, out / src.name)
    manifest = merged_manifest(manifests)
    write_manifest(out, manifest)  # last: a folder without it is no profile
    return manifest
