"""`trail doctor` passes where TRAIL works and fails, naming the check, where it does not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine


def _doctor(tmp_path, *args: str, before: str = "") -> tuple[int, dict[str, dict], str]:
    """Run `trail doctor` in a fresh process (`before`: Python run first, in that process)."""
    out = tmp_path / "checks.json"
    code = f"{before}\nfrom trail.cli import main\nmain()"
    cmd = [sys.executable, "-c", code, "doctor", *args, "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
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


def test_doctor_fails_when_the_probe_hook_is_disconnected(tiny_path, tmp_path) -> None:
    # in-process engine, so the stand-in applied in this process reaches the engine's runner
    before = "from tests.support.gpu_standins import disconnect_probe; disconnect_probe()"
    args = ("--model", str(tiny_path), "--engine", '{"in_process": true}')
    rc, checks, log = _doctor(tmp_path, *args, before=before)
    assert rc == 1, log[-3000:]
    assert checks["probe outputs on prefill steps"]["status"] == "FAIL"
    assert checks["probe outputs on decode steps"]["status"] == "FAIL"
    assert "FAIL" in log and "probe outputs on decode steps" in log
