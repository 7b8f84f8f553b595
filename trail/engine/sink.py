"""Worker-side capture sink: layer-k rows of chosen requests, appended to local files.

Profiling (and opt-in capture of served traffic) needs hidden states of the requests the engine
is generating anyway; recomputing them afterwards with a teacher-forced pass doubles the
compute. The sink runs where the states are (the worker), after the step's forward pass, and
writes append-only raw files:

  <dir>/<pid>.json        {"layers": [...], "hidden": H, "dtype": "float16"}
  <dir>/<pid>.bin         rows of [len(layers), H] float16, in write order
  <dir>/<pid>.idx         one line per row: "<capture id>\\t<generated>"  (written after its row)
  <dir>/<pid>.stats.json  rows written / dropped (queue full, over quota, write error), bytes

A request is captured if its SamplingParams.extra_args["trail"] holds a `capture_id`; its rows
are those with generated % capture_every == 0 (generated 0 = the last prompt token).

Two modes. The profiler writes on the step (`queue_rows=0`): lossless, and every row of a
request is on disk when the engine returns it. Served traffic (`queue_rows>0`) must never wait
on a disk: the step copies its rows into a bounded queue and a writer thread drains it; a full
queue or a spent quota drops rows and counts them, it never blocks the scheduling loop.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from trail.engine.tracking import trail_args

Rows = list[tuple[str, int, torch.Tensor]]


class CaptureSink:
    def __init__(
        self,
        folder: str | Path,
        layers: list[int],
        hidden: int,
        *,
        quota_bytes: float | None = None,
        queue_rows: int = 0,
        on_count: Callable[[str, int], None] | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.stem = self.folder / str(os.getpid())
        meta = {"layers": list(layers), "hidden": hidden, "dtype": "float16"}
        self.stem.with_suffix(".json").write_text(json.dumps(meta))
        self._bin: IO[bytes] = open(self.stem.with_suffix(".bin"), "ab")  # noqa: SIM115
        self._idx: IO[str] = open(self.stem.with_suffix(".idx"), "a")  # noqa: SIM115
        self.quota_bytes = quota_bytes
        self._on_count = on_count or (lambda outcome, n: None)
        self.stats = {"rows_written": 0, "dropped_queue": 0, "dropped_quota": 0, "dropped_error": 0}
        self.stats["bytes"] = self._bin.tell()
        self._queue: queue.Queue | None = None
        if queue_rows > 0:
            self._queue = queue.Queue(maxsize=queue_rows)
            threading.Thread(target=self._drain, name="trail-capture", daemon=True).start()

    def write(self, rows: Rows) -> None:
        """Called on the step: write now (profiling) or enqueue without waiting (serving)."""
        if not rows:
            return
        block = torch.stack([r for _, _, r in rows]).to(torch.float16).cpu().numpy()
        keys = [(cid, g) for cid, g, _ in rows]
        if self._queue is None:
            self._append(block, keys)
            return
        try:
            self._queue.put_nowait((block, keys))
        except queue.Full:
            self._count("dropped_queue", len(keys))

    def flush(self) -> dict[str, int]:
        """Wait until every queued row is on disk (the profiler, between shards); the
        counters say what was dropped on the way."""
        if self._queue is not None:
            self._queue.join()
        return dict(self.stats)

    def close(self, timeout_s: float = 5.0) -> None:
        """Drain what is queued (tests, shutdown), then close the files."""
        if self._queue is not None:
            self._queue.put(None, timeout=timeout_s)
            self._queue.join()
        self._bin.close()
        self._idx.close()

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._append(*item)
            except OSError:  # disk full, folder gone: drop and count, keep draining
                self._count("dropped_error", len(item[1]))
            finally:
                self._queue.task_done()

    def _append(self, block: np.ndarray, keys: list[tuple[str, int]]) -> None:
        data = block.tobytes()
        if self.quota_bytes is not None and self.stats["bytes"] + len(data) > self.quota_bytes:
            self._count("dropped_quota", len(keys))
        else:
            self._bin.write(data)
            self._bin.flush()
            self._idx.write("".join(f"{cid}\t{g}\n" for cid, g in keys))
            self._idx.flush()
            self.stats["bytes"] += len(data)
            self._count("rows_written", len(keys))
        self._write_stats()

    def _count(self, outcome: str, n: int) -> None:
        self.stats[outcome] += n
        self._on_count("written" if outcome == "rows_written" else outcome, n)

    def _write_stats(self) -> None:
        path = self.stem.with_suffix(".stats.json")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.stats))
        os.replace(tmp, path)


def capture_stats(folder: str | Path) -> dict[str, int]:
    """The sinks' counters summed over every worker that wrote to this folder."""
    total = {"rows_written": 0, "dropped_queue": 0, "dropped_quota": 0, "dropped_error": 0}
    total["bytes"] = 0
    for path in Path(folder).glob("*.stats.json"):
        try:
            stats = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in total:
            total[key] += int(stats.get(key, 0))
    return total


def capture_request(runner_request: Any) -> tuple[str, int] | None:
    """(capture id, every) if this request asked to be captured, else None. The keys are read
    as the scheduler reads them (tracking.trail_args: nested, or flat `trail_*`)."""
    sp = getattr(runner_request, "sampling_params", None)
    extra = trail_args(sp.extra_args if sp is not None else None)
    cid = extra.get("capture_id")
    return None if cid is None else (str(cid), max(int(extra.get("capture_every", 1)), 1))


def sink_metas(folder: str | Path) -> list[Path]:
    """Each worker's <pid>.json (other JSON in the folder, e.g. a training report, is not)."""
    return [p for p in sorted(Path(folder).glob("*.json")) if p.with_suffix(".idx").exists()]


def read_captures(folder: str | Path) -> dict[str, dict[int, np.ndarray]]:
    """Every captured row by capture id and step: {id: {generated: [layers, hidden]}}."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for meta_path in sink_metas(folder):
        meta = json.loads(meta_path.read_text())
        shape = (len(meta["layers"]), int(meta["hidden"]))
        lines = meta_path.with_suffix(".idx").read_text().splitlines()
        data = np.fromfile(meta_path.with_suffix(".bin"), dtype=np.float16)
        rows = data[: len(lines) * shape[0] * shape[1]].reshape(-1, *shape)
        for i, line in enumerate(lines):
            cid, g = line.split("\t")
            out.setdefault(cid, {})[int(g)] = rows[i]
    return out
