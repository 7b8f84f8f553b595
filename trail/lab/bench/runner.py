"""One benchmark run against a live OpenAI endpoint: build the request set and its arrival
times from one spec, send, summarize. Used by `trail bench load`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from trail.lab.bench.client import Endpoint, Mode, Record, make_body
from trail.lab.bench.loadgen import closed_loop, open_loop
from trail.lab.bench.run_summary import SLO, summarize_records
from trail.lab.workload import requests as rq
from trail.lab.workload.arrivals import arrival_times


@dataclass
class LoadSpec:
    """What is sent: the same spec gives the same requests and the same unit-rate arrivals."""

    n: int = 32
    seed: int = 0
    max_out: int = 128
    mode: Mode = "exact"
    endpoint: Endpoint = "chat"
    burstiness: float = 1.0
    timeout_s: float = 600.0
    source: str | None = None  # None: the shipped SmolLM2 test set

    def requests(self) -> list[rq.BenchRequest]:
        pairs = rq.load_source(Path(self.source) if self.source else None)
        return rq.build(pairs, self.n, self.seed, self.max_out)

    def unit_times(self) -> list[float]:
        """Arrivals at 1 req/s; a run at rate r sends at unit_times / r."""
        return [float(t) for t in arrival_times(self.n, 1.0, self.seed + 1, self.burstiness)]

    def to_dict(self) -> dict:
        return asdict(self)


def _body(spec: LoadSpec, model: str, send_true_len: bool):  # noqa: ANN202 - BodyFn
    return partial(
        make_body,
        model=model,
        endpoint=spec.endpoint,
        mode=spec.mode,
        max_out=spec.max_out,
        send_true_len=send_true_len,
    )


def run_open(
    url: str,
    model: str,
    spec: LoadSpec,
    rate: float,
    send_true_len: bool = False,
    slo: SLO | None = None,
    progress: bool = True,
    label: str = "requests",
) -> tuple[list[Record], dict]:
    reqs = spec.requests()
    times = [t / rate for t in spec.unit_times()] if rate != float("inf") else [0.0] * len(reqs)
    body = _body(spec, model, send_true_len)
    records = asyncio.run(
        open_loop(url, reqs, times, body, spec.endpoint, spec.timeout_s, progress, label)
    )
    return records, summarize_records([r.to_dict() for r in records], slo)


def run_closed(
    url: str,
    model: str,
    spec: LoadSpec,
    concurrency: int,
    send_true_len: bool = False,
    slo: SLO | None = None,
    progress: bool = True,
    label: str = "saturation",
) -> tuple[list[Record], dict]:
    body = _body(spec, model, send_true_len)
    records = asyncio.run(
        closed_loop(
            url, spec.requests(), concurrency, body, spec.endpoint, spec.timeout_s, progress, label
        )
    )
    return records, summarize_records([r.to_dict() for r in records], slo)


def warmup(url: str, model: str, endpoint: Endpoint = "chat", k: int = 2) -> None:
    """A few short requests so the first measured one does not pay one-time start costs."""
    spec = LoadSpec(n=k, max_out=8, endpoint=endpoint, timeout_s=300.0)
    records, _ = run_closed(url, model, spec, k, progress=False)
    bad = [r.error for r in records if not r.ok]
    if bad:
        raise RuntimeError(f"warm-up failed: {bad[0]}")
