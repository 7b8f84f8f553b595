"""`trail doctor` passes where TRAIL works and fails, naming the check, where it does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


def _doctor(tmp_path, *args: str, standin: str | None = None) -> tuple[int, dict, str]:
    """Run `trail doctor` in a fresh process. `standin` (tests/support/gpu_standins.py) is
    installed in *every* Python process of the run — the engine core is a spawned process —
    through a sitecustomize module on PYTHONPATH."""
    out = tmp_path / "checks.json"
    env = dict(os.environ)
    if standin:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            f"from tests.support.gpu_standins import install\ninstall([{standin!r}])\n"
        )
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "trail.cli", "doctor", *args, "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    checks = {c["name"]: c for c in json.loads(out.read_text())} if out.exists() else {}
    return proc.returncode, checks, proc.stdout + proc.stderr[-3000:]


def _assert_passes(rc: int, checks: dict, log: str) -> None:
    failed = {n: c["detail"] for n, c in checks.items() if c["status"] == "FAIL"}
    assert rc == 0 and not failed, (failed, log[-3000:])
    for name in (
        "probe outputs on prefill steps",
        "probe outputs on decode steps",
        "predictions refined",
        "captured rows equal transformers",
    ):
        assert checks[name]["status"] == "PASS", checks[name]


def test_doctor_passes_with_smollm2_and_its_trained_probe(smollm2_path, tmp_path) -> None:
    rc, checks, log = _doctor(tmp_path, "--model", str(smollm2_path))
    _assert_passes(rc, checks, log)
    assert "trained probe" in checks["probe"]["detail"]


SERVED_ARCHS = ["llama", "mistral", "qwen2", "qwen3", "granite", "phi3", "olmo2"]


@pytest.mark.parametrize("arch", SERVED_ARCHS)
def test_doctor_passes_on_each_tiny_architecture(arch, tiny_arch_paths, tmp_path) -> None:
    """Each model loads with its own vLLM class, and the rows TRAIL captured at layer k equal
    transformers' hidden_states[k + 1] for the same tokens (the doctor's reference check)."""
    rc, checks, log = _doctor(tmp_path, "--model", str(tiny_arch_paths[arch]))
    _assert_passes(rc, checks, log)
    assert "plumbing probe" in checks["probe"]["detail"]


def test_doctor_fails_when_the_probe_hook_is_disconnected(tiny_path, tmp_path) -> None:
    args = ("--model", str(tiny_path))
    rc, checks, log = _doctor(tmp_path, *args, standin="disconnect_probe")
    assert rc == 1, log[-3000:]
    assert checks["probe outputs on prefill steps"]["status"] == "FAIL"
    assert checks["probe outputs on decode steps"]["status"] == "FAIL"
    assert "FAIL" in log and "probe outputs on decode steps" in log
