"""The replica's half of served-traffic capture: which requests are captured, and their labels.

The worker writes the hidden-state rows of a sampled request (trail/engine/sink.py); the true
length is only known here, when the request finishes, so the replica appends one label line
per captured request. A request that never finishes (client gone, aborted) gets no label and
its rows are ignored by training. The prompt text is never written.

  <dir>/labels/<replica>.jsonl  {"id", "length", "finish_reason", "max_tokens",
                                 "prompt_tokens", "probe_version", "ts"}
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trail.serve.config import ServeConfig
from trail.serve.protocol import EngineRequest


def sampled(request_id: str, fraction: float) -> bool:
    """A stable decision per request id (the same request is always in or out)."""
    if fraction <= 0:
        return False
    digest = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
    return digest / 2**64 < fraction


@dataclass
class ServedCapture:
    fraction: float
    every: int
    labels: Path

    @classmethod
    def from_config(cls, cfg: ServeConfig, replica: str) -> ServedCapture | None:
        if cfg.capture.fraction <= 0 or cfg.engine.trail is None:
            return None
        labels = Path(cfg.capture_dir()) / "labels" / f"{replica}.jsonl"
        labels.parent.mkdir(parents=True, exist_ok=True)
        return cls(cfg.capture.fraction, cfg.capture.every, labels)

    def sampled(self, request_id: str) -> bool:
        return sampled(request_id, self.fraction)

    def extra(self, request_id: str) -> dict[str, Any]:
        """What the worker's sink reads from SamplingParams.extra_args["trail"]."""
        return {"capture_id": request_id, "capture_every": self.every}

    def label(
        self, req: EngineRequest, length: int, finish_reason: Any, probe_version: str | None
    ) -> None:
        row = {
            "id": req.request_id,
            "length": length,
            "finish_reason": None if finish_reason is None else str(finish_reason),
            "max_tokens": req.sampling.get("max_tokens"),
            "prompt_tokens": len(req.prompt_token_ids),
            "probe_version": probe_version,
            "ts": time.time(),
        }
        with self.labels.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_labels(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every label line under <folder>/labels, by capture id (a torn last line is skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(folder) / "labels").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            out[row["id"]] = row
    return out
