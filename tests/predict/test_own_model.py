"""A user's own model, end to end, through the commands a GPU user runs (docs/gpu.md):
profile → train probe and prompt head → eval → serve (checked by `trail doctor`, which starts
the engine as a Serve replica does). The model is a tiny random Qwen3 — not a Llama — so its
predictions mean nothing; what is proved is that every step accepts another architecture and
that the served engine runs *this* probe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]


def trail(*args: str, timeout: int = 900) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "trail.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (
        f"trail {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def test_tiny_qwen3_goes_profile_train_eval_serve(tiny_arch_paths, tmp_path) -> None:
    model = str(tiny_arch_paths["qwen3"])
    prof, probe, prompt = tmp_path / "profile", tmp_path / "probe", tmp_path / "prompt"
    trail("profile", "--model", model, "--out", str(prof), "--limit", "48", "--cap", "48",
          "--shard-size", "24", "--max-num-seqs", "8")  # fmt: skip
    manifest = json.loads((prof / "manifest.json").read_text())
    assert manifest["settings"]["layers"] == [1, 2]  # fractions of the tiny model's 4 layers

    trail("train", "probe", "--profile", str(prof), "--layer", "1", "--k", "6", "--epochs", "3",
          "--out", str(probe))  # fmt: skip
    trail("train", "prompt", "--profile", str(prof), "--k", "6", "--epochs", "3",
          "--no-finetune", "--out", str(prompt))  # fmt: skip
    from trail.predict.probe import ProbeBundle

    trained = ProbeBundle.load(probe)
    assert trained.layer == 1 and trained.model_hidden == 128

    report = tmp_path / "eval.json"
    trail("eval", "--profile", str(prof), "--probe", str(probe), "--prompt", str(prompt),
          "--report", str(report), "--plots", str(tmp_path / "plots"), "--no-cost")  # fmt: skip
    assert report.exists() and json.loads(report.read_text())

    checks = tmp_path / "doctor.json"
    trail("doctor", "--model", model, "--probe", str(probe), "--json", str(checks))
    by_name = {c["name"]: c for c in json.loads(checks.read_text())}
    assert (
        "trained probe" in by_name["probe"]["detail"] and str(probe) in by_name["probe"]["detail"]
    )
    assert by_name["probe outputs on decode steps"]["status"] == "PASS"
    assert by_name["captured rows equal transformers"]["status"] == "PASS"
