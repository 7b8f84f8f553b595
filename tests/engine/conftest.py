"""Engine tests: each engine configuration runs in its own process (see engine_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_id(engine_request_id: str) -> str:
    """vLLM appends '-xxxxxxxx' to request ids inside the engine."""
    return engine_request_id.rsplit("-", 1)[0]


@pytest.fixture
def run_engine(tmp_path):
    def run(engine: dict, prompt_ids: list[list[int]], params: list[dict], timeout: int = 600) -> dict:
        spec = tmp_path / f"spec-{len(list(tmp_path.iterdir()))}.json"
        out = spec.with_suffix(".out.json")
        spec.write_text(json.dumps({"engine": engine, "prompt_ids": prompt_ids, "params": params}))
        proc = subprocess.run(
            [sys.executable, str(HERE / "engine_run.py"), str(spec), str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            pytest.fail(f"engine run failed:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())

    return run
