"""One soak: start the stack, run load + faults + sampler together, judge, write JSON + PNG."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ops.soak.faults import DEADLINES_S, ORDER, Env, Fault, fresh_stats, schedule
from ops.soak.load import LoadConfig, open_loop
from ops.soak.outcomes import Ledger
from ops.soak.plot import plot
from ops.soak.sampler import Sampler
from ops.soak.stack import Stack, start_stack, stop_stack, wait_until
from ops.soak.verdict import conditions, fit_slopes, tag_windows


@dataclass
class SoakConfig:
    minutes: float = 60.0
    out: Path = Path("runs/soak")
    sample_s: float = 60.0
    faults: list[str] = field(default_factory=lambda: list(ORDER))
    load: LoadConfig = field(default_factory=LoadConfig)
    store_ttl_s: int = 300  # record keys expire: Redis levels off at ~rate x ttl
    min_requests: int | None = None  # default: 90 % of what the load offers (bursts included)

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def fault_times(self) -> tuple[float, float, float]:
        """(first at, gap, last start): the faults in the first ~40 % of the run (plus their
        recoveries), so the last half, where slopes are fitted, sees a settled app."""
        n = max(len(self.faults), 1)
        first = min(60.0, 0.1 * self.seconds)
        gap = max(15.0, (0.4 * self.seconds - first) / n)
        return first, gap, 0.9 * self.seconds


async def drive(stack: Stack, cfg: SoakConfig, ledger: Ledger, faults: list[Fault]) -> float:
    """Load and faults together; the load ends on time, the faults finish their recoveries."""
    env, stop = Env(stack, ledger, cfg.load), asyncio.Event()
    first, gap, last = cfg.fault_times()
    fault_task = asyncio.create_task(schedule(env, cfg.faults, first, gap, last, faults))
    t0 = time.monotonic()
    await open_loop(stack.url, ledger, cfg.load, cfg.seconds, stop)
    load_s = time.monotonic() - t0
    await asyncio.wait_for(fault_task, timeout=sum(DEADLINES_S.values()) + 60)
    return load_s


def kv_at_end(stack: Stack, timeout_s: float = 60) -> dict[str, list]:
    """Once the app is idle: each live replica's [free, total] KV blocks."""

    def idle() -> bool:
        stats = fresh_stats(stack)
        return len(stats) == 2 and all(
            s["inflight"] == 0 and s["engine_unfinished"] == 0 for s in stats.values()
        )

    with contextlib.suppress(TimeoutError):
        wait_until(idle, timeout_s, "idle replicas", 0.5)
    return {
        n: [s.get("kv_free_blocks"), s.get("kv_total_blocks")]
        for n, s in fresh_stats(stack).items()
    }


def fault_rows(faults: list[Fault], t0: float) -> list[dict]:
    rows = []
    for f in faults:
        row = asdict(f)
        row["at_s"] = round(f.start - t0, 1) if f.start else None
        row["until_s"] = round(f.end - t0, 1) if f.end else None
        rows.append(row)
    return rows


def soak(cfg: SoakConfig) -> dict:
    """The whole run; returns the summary (also written to cfg.out/summary.json + soak.png)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stack = start_stack(cfg.store_ttl_s)
    try:
        startup_s = time.monotonic() - started
        ledger, faults = Ledger(), []
        sampler = Sampler(stack, cfg.sample_s, ledger.t0)
        sampler.start()
        load_s = asyncio.run(drive(stack, cfg, ledger, faults))
        kv_end = kv_at_end(stack)
        sampler.stop()
    finally:
        stop_stack(stack)
    windows = tag_windows(ledger, faults)
    redis_faults = [f.end - ledger.t0 for f in faults if f.name.startswith("redis") and f.end]
    slopes = fit_slopes(sampler.samples, max(redis_faults, default=0.0) + cfg.store_ttl_s)
    offered = cfg.load.rate + cfg.load.burst_size / cfg.load.burst_every_s  # 3.6/s: 13,000 an hour
    min_requests = (
        cfg.min_requests if cfg.min_requests is not None else int(0.9 * offered * cfg.seconds)
    )
    checks = conditions(ledger, faults, slopes, kv_end, min_requests)
    summary = {
        "config": {
            "minutes": cfg.minutes,
            "rate": cfg.load.rate,
            "sample_s": cfg.sample_s,
            "faults": cfg.faults,
            "store_ttl_s": cfg.store_ttl_s,
            "burst": [cfg.load.burst_size, cfg.load.burst_every_s],
        },
        "wall_s": {
            "startup": round(startup_s),
            "load": round(load_s),
            "total": round(time.monotonic() - started),
        },
        "outcomes": ledger.summary(),
        "faults": fault_rows(faults, ledger.t0),
        "classes_in_windows": windows,
        "failures": ledger.failure_rows(),
        "slopes": slopes,
        "kv_end": kv_end,
        "conditions": checks,
        "passed": all(c["ok"] for c in checks),
    }
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (cfg.out / "samples.json").write_text(json.dumps(sampler.samples))
    plot(sampler.samples, summary["faults"], cfg.out / "soak.png")
    return summary
