"""Engine tests' helpers: the scheduler's event log and vLLM's request ids."""

from __future__ import annotations

import json
from pathlib import Path


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_id(engine_request_id: str) -> str:
    """vLLM appends '-xxxxxxxx' to request ids inside the engine."""
    return engine_request_id.rsplit("-", 1)[0]
