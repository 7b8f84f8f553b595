"""`trail profile` on any supported model, in shard ranges that `trail profile merge` unites
(issue 31): two ranges merged hold exactly the rows of one run over their union; merge refuses
other settings and overlapping shards; candidate layers follow the model's depth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trail.cli.profile import app as profile_app
from trail.lab.learn.merge import MergeRefused, merge_profiles
from trail.lab.learn.profile import (
    model_depth,
    parse_shard_range,
    resolve_layers,
)
from trail.lab.learn.shards import (
    load_dense,
    load_profile,
    read_manifest,
    write_manifest,
    write_shard,
)

SMOLLM2_LAYERS = (6, 9, 12, 15, 17, 19, 21, 24, 27)  # shipped probe and profile depend on it
# 8 prompts in 2 shards of 4 (shard 0 holds the test and the val request), 16 tokens each
TINY_RUN = ["--limit", "8", "--shard-size", "4", "--cap", "16", "--positions", "4"]


def profile_cli(model: Path, out: Path, *extra: str) -> None:
    """One `trail profile` run in a fresh process (vLLM reads its environment once), with the
    engine core in that process: a tiny run is dominated by process start-up."""
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    args = ["--model", str(model), "--out", str(out), "--max-num-seqs", "8", *TINY_RUN, *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "trail.cli.profile", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def qwen3_runs(tmp_path_factory, tiny_arch_paths) -> dict[str, Path]:  # noqa: ANN001
    """tiny-qwen3 (a non-Llama architecture) profiled three times: shards 0..1 in one run, and
    shard 0 and shard 1 each in a run of its own."""
    root = tmp_path_factory.mktemp("profiles")
    model = tiny_arch_paths["qwen3"]
    runs = {"union": root / "union", "first": root / "first", "second": root / "second"}
    profile_cli(model, runs["union"])
    profile_cli(model, runs["first"], "--shard-range", "0:1")
    profile_cli(model, runs["second"], "--shard-range", "1:")
    return runs


def test_two_shard_ranges_merged_equal_one_run_of_their_union(qwen3_runs, tmp_path) -> None:  # noqa: ANN001
    assert read_manifest(qwen3_runs["first"])["done"] == [0]
    assert read_manifest(qwen3_runs["second"])["done"] == [1]
    merged = tmp_path / "merged"
    result = CliRunner().invoke(
        profile_app, ["merge", str(merged), str(qwen3_runs["second"]), str(qwen3_runs["first"])]
    )
    assert result.exit_code == 0, result.output
    union, got = load_profile(qwen3_runs["union"]), load_profile(merged)
    assert got.requests == union.requests
    assert got.layers == union.layers
    for key in ("row_request", "steps", "labels"):
        np.testing.assert_array_equal(getattr(got, key), getattr(union, key))
    assert np.asarray(got.vectors).tobytes() == np.asarray(union.vectors).tobytes()
    for split in ("val", "test"):
        want_reqs, want = load_dense(qwen3_runs["union"], got.layers[-1], split)
        have_reqs, have = load_dense(merged, got.layers[-1], split)
        assert have_reqs == want_reqs and len(have) == 1
        assert all(a.tobytes() == b.tobytes() for a, b in zip(have, want, strict=True))
    manifest = read_manifest(merged)
    assert manifest["done"] == [0, 1]
    assert manifest["settings"] == read_manifest(qwen3_runs["union"])["settings"]
    assert sorted(manifest["seconds"]) == ["0", "1"]


def test_profile_captures_a_non_llama_model(qwen3_runs) -> None:  # noqa: ANN001
    data = load_profile(qwen3_runs["union"])
    assert data.layers == [1, 2]  # default fractions of 4 layers, within vLLM's 0..2
    assert data.vectors.shape == (len(data.steps), 2, 128)
    assert len(data.requests) == 8 and {r["split"] for r in data.requests} == {
        "train",
        "val",
        "test",
    }
    lengths = np.array([r["length"] for r in data.requests])[data.row_request]
    np.testing.assert_array_equal(data.labels, lengths - data.steps)
    assert set(np.unique(data.row_request)) == set(range(8))  # every request has rows
    assert np.isfinite(np.asarray(data.vectors, dtype=np.float32)).all()
    reqs, dense = load_dense(qwen3_runs["union"], 1, "test")  # raises unless 0..L-1 covered
    assert [len(v) for v in dense] == [r["length"] for r in reqs]


# ---- merge refusals (synthetic profiles, no engine) ------------------------------------------
def fake_profile(root: Path, shards: list[int], dtype: str = "float32") -> Path:
    settings = {"model": "m", "shard_size": 2, "dtype": dtype, "layers": [1, 2]}
    seconds = {str(i): {"generate": 1.0, "output_tokens": 4} for i in shards}
    root.mkdir(parents=True)
    for i in shards:
        arrays = {
            "req": np.array([0, 1]),
            "steps": np.array([0, 0]),
            "labels": np.array([2, 2]),
            "vectors": np.full((2, 2, 4), i, dtype=np.float16),
        }
        write_shard(root, i, [{"split": "train", "length": 2}] * 2, arrays)
    write_manifest(root, {"settings": settings, "done": shards, "seconds": seconds})
    return root


def test_merge_refuses_profiles_with_other_settings(tmp_path) -> None:  # noqa: ANN001
    a = fake_profile(tmp_path / "a", [0])
    b = fake_profile(tmp_path / "b", [1], dtype="bfloat16")
    with pytest.raises(MergeRefused, match="dtype: 'float32' vs 'bfloat16'"):
        merge_profiles(tmp_path / "out", [a, b])
    assert not (tmp_path / "out").exists()  # checked before anything is written
    result = CliRunner().invoke(profile_app, ["merge", str(tmp_path / "out"), str(a), str(b)])
    assert result.exit_code == 2 and "other settings" in result.output


def test_merge_refuses_overlapping_shards(tmp_path) -> None:  # noqa: ANN001
    a = fake_profile(tmp_path / "a", [0, 1])
    b = fake_profile(tmp_path / "b", [1, 2])
    with pytest.raises(MergeRefused, match="shard 1 is finished in both"):
        merge_profiles(tmp_path / "out", [a, b])


def test_merge_of_disjoint_ranges_holds_every_shard(tmp_path) -> None:  # noqa: ANN001
    a = fake_profile(tmp_path / "a", [0, 2])
    b = fake_profile(tmp_path / "b", [1])
    manifest = merge_profiles(tmp_path / "out", [a, b])
    assert manifest["done"] == [0, 1, 2] and list(manifest["seconds"]) == ["0", "1", "2"]
    vectors = np.asarray(load_profile(tmp_path / "out").vectors)
    assert vectors[:, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(MergeRefused, match="already holds a profile"):
        merge_profiles(tmp_path / "out", [a])


# ---- candidate layers and shard ranges -------------------------------------------------------
def test_default_layers_follow_the_models_depth(smollm2_path, tiny_arch_paths, tmp_path) -> None:  # noqa: ANN001
    from transformers import LlamaConfig

    assert model_depth(str(smollm2_path)) == 30
    assert resolve_layers(None, 30) == SMOLLM2_LAYERS
    assert model_depth(str(tiny_arch_paths["llama"])) == 4
    assert resolve_layers(None, 4) == (1, 2)  # vLLM returns layers 0..n-2 as aux states
    LlamaConfig(num_hidden_layers=32, hidden_size=64, num_attention_heads=4).save_pretrained(
        tmp_path
    )
    assert model_depth(str(tmp_path)) == 32
    assert resolve_layers(None, 32) == (6, 10, 13, 16, 18, 20, 22, 26, 29)


def test_explicit_layers_are_ids_or_fractions() -> None:
    assert resolve_layers("6,9,12", 30) == (6, 9, 12)
    assert resolve_layers("12, 6,0.5", 30) == (6, 12, 15)
    with pytest.raises(ValueError, match="layer 29 does not exist"):
        resolve_layers("29", 30)
    with pytest.raises(ValueError, match="fraction"):
        resolve_layers("1.5", 30)


def test_shard_ranges_parse() -> None:
    assert parse_shard_range("2:4") == (2, 4)
    assert parse_shard_range("3:") == (3, None)
    assert parse_shard_range(None) is None
    for bad in ("4:2", "3", "a:b", ":2"):
        with pytest.raises(ValueError, match="shard-range"):
            parse_shard_range(bad)
