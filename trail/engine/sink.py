"""Worker-side capture sink: layer-k rows of chosen requests, appended to local files.

Profiling (and opt-in capture of served traffic) needs hidden states of the requests the engine
is generating anyway; recomputing them afterwards with a teacher-forced pass doubles the
compute. The sink runs where the states are (the worker), after the step's forward pass, and
writes append-only raw files, flushed each step so that a reader sees every row of a request as
soon as the engine has returned it:

  <dir>/<pid>.json  {"layers": [...], "hidden": H, "dtype": "float16"}
  <dir>/<pid>.bin   rows of [len(layers), H] float16, in write order
  <dir>/<pid>.idx   one line per row: "<capture id>\\t<generated>"  (written after its row)

A request is captured if its SamplingParams.extra_args["trail"] holds a `capture_id`; its rows
are those with generated % capture_every == 0 (generated 0 = the last prompt token).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


class CaptureSink:
    def __init__(self, folder: str | Path, layers: list[int], hidden: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.folder / str(os.getpid())
        meta = {"layers": list(layers), "hidden": hidden, "dtype": "float16"}
        stem.with_suffix(".json").write_text(json.dumps(meta))
        self._bin: IO[bytes] = open(stem.with_suffix(".bin"), "ab")  # noqa: SIM115
        self._idx: IO[str] = open(stem.with_suffix(".idx"), "a")  # noqa: SIM115

    def write(self, rows: list[tuple[str, int, torch.Tensor]]) -> None:
        if not rows:
            return
        block = torch.stack([r for _, _, r in rows]).to(torch.float16).cpu().numpy()
        self._bin.write(block.tobytes())
        self._bin.flush()
        self._idx.write("".join(f"{cid}\t{g}\n" for cid, g, _ in rows))
        self._idx.flush()


def capture_request(runner_request: Any) -> tuple[str, int] | None:
    """(capture id, every) if this request asked to be captured, else None."""
    sp = getattr(runner_request, "sampling_params", None)
    extra = ((sp.extra_args or {}) if sp is not None else {}).get("trail") or {}
    cid = extra.get("capture_id")
    return None if cid is None else (str(cid), max(int(extra.get("capture_every", 1)), 1))


def read_captures(folder: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """Every captured row by capture id and step: {id: {generated: [layers, hidden]}}."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for meta_path in sorted(Path(folder).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        shape = (len(meta["layers"]), int(meta["hidden"]))
        lines = meta_path.with_suffix(".idx").read_text().splitlines()
        data = np.fromfile(meta_path.with_suffix(".bin"), dtype=np.float16)
        rows = data[: len(lines) * shape[0] * shape[1]].reshape(-1, *shape)
        for i, line in enumerate(lines):
            cid, g = line.split("\t")
            out.setdefault(cid, {})[int(g)] = rows[i]
    return out
