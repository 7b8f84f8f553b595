"""The Serve side of served-traffic capture: which requests are captured, labels, embeddings.

The worker writes the hidden-state rows of a sampled request (trail/engine/sink.py); the true
length is only known in the replica, when the request finishes, so it appends one label line
per captured request. The ingress, which runs the prompt predictor, appends the head's input
embedding of the same requests (the same stable sample). A request that never finishes (client
gone, aborted) gets no label and is ignored by training. The prompt text is never written.

  <dir>/labels/<replica>.jsonl   {"id", "length", "finish_reason", "max_tokens",
                                  "prompt_tokens", "probe_version", "ts"}
  <dir>/prompts/<ingress>.jsonl  {"id", "embedding": [384 floats], "prompt_version"}
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trail.serve.config import ServeConfig


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
    folder: Path
    name: str  # this replica's or ingress's: one file each, no two writers share one

    @classmethod
    def from_config(cls, cfg: ServeConfig, name: str) -> ServedCapture | None:
        if cfg.capture.fraction <= 0 or cfg.engine.trail is None:
            return None
        return cls(cfg.capture.fraction, cfg.capture.every, Path(cfg.capture_dir()), name)

    @property
    def labels(self) -> Path:
        return self.folder / "labels" / f"{self.name}.jsonl"

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def sampled(self, request_id: str) -> bool:
        return sampled(request_id, self.fraction)

    def extra(self, request_id: str) -> dict[str, Any]:
        """What the worker's sink reads from SamplingParams.extra_args["trail"]."""
        return {"capture_id": request_id, "capture_every": self.every}

    def label(
        self,
        request_id: str,
        length: int,
        finish_reason: Any,
        max_tokens: int | None,
        prompt_tokens: int,
        probe_version: str | None,
    ) -> None:
        row = {
            "id": request_id,
            "length": length,
            "finish_reason": None if finish_reason is None else str(finish_reason),
            "max_tokens": max_tokens,
            "prompt_tokens": prompt_tokens,
            "probe_version": probe_version,
            "ts": time.time(),
        }
        self._append(self.labels, row)

    def prompt(self, request_id: str, embedding: Any, version: str | None) -> None:
        """The prompt head's input embedding (an array) of a captured request."""
        values = [round(float(x), 5) for x in embedding]
        row = {"id": request_id, "embedding": values, "prompt_version": version}
        self._append(self.folder / "prompts" / f"{self.name}.jsonl", row)


def read_labels(folder: str | Path, kind: str = "labels") -> dict[str, dict[str, Any]]:
    """Every line under <folder>/<kind> (labels or prompts), by request id; a torn last line
    is skipped."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(folder) / kind).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            out[row["id"]] = row
    return out
