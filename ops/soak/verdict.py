"""From a run's ledger, faults and samples to the issue's Done-when conditions.

Leak thresholds are slopes per minute, fitted (numpy.polyfit, degree 1) over the last half of
the run — after warm-up, when a healthy process has stopped growing. Per kind:

- RSS: 1.5 MiB/min per process (90 MiB an hour);
- open fds: 0.5 per minute per process (a leaked socket per request shows at ~180/min);
- router ledger entries: 0.5 per minute per table and ingress (bounded by what is in flight);
- but never less than MIN_GROWTH over the whole window (8 MiB, 4 fds, 4 entries): a 60-minute
  run's 30-minute window resolves the per-minute figures above, a 5-minute run's 2.5 minutes
  only ~3 MiB/min and ~1.6 fds/min;
- Redis memory and key count: 2 % of their mean level per minute, fitted only after the last
  Redis restart plus one record TTL (the store's keys expire after `store_ttl_s`, so memory
  levels off at about rate x TTL; before that it is still filling).

Bytes on disk (the replicas' load files, the metric files, Ray's session logs) are fitted and
reported, not judged: Ray's logs grow with every request by design (rotated by Ray).

A series is fitted from SETTLE_S after it first appeared at the earliest (a replacement
process grows while it loads its model). A series with fewer than MIN_POINTS samples in its window (a process replaced late) is skipped
and listed as such.
"""

from __future__ import annotations

import numpy as np

from ops.soak.faults import KILL_GRACE_S, KILLS, Fault
from ops.soak.outcomes import Ledger, Outcome

THRESHOLDS = {"rss_mib": 1.5, "fds": 0.5, "ledger": 0.5}  # absolute, per minute
# what a short window cannot resolve: growth over the whole window below this is not a leak (a
# 2.5-minute window would call one more fd, or an allocator's next arena, a slope)
MIN_GROWTH = {"rss_mib": 8.0, "fds": 4.0, "ledger": 4.0}
RELATIVE = {"redis_memory_kib": 0.02, "redis_keys": 0.02}  # share of the mean level, per minute
MIN_POINTS = 4
SETTLE_S = 60.0


def series(samples: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """`kind/name` -> [(t s, value)] for every fitted series."""
    out: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        for kind in ("rss_mib", "fds", "ledger", "files_kib"):
            for name, v in s.get(kind, {}).items():
                out.setdefault(f"{kind}/{name}", []).append((s["t"], v))
        for key, kind in (("memory_kib", "redis_memory_kib"), ("keys", "redis_keys")):
            if key in s["redis"]:
                out.setdefault(f"{kind}/redis", []).append((s["t"], float(s["redis"][key])))
    return out


def slope_per_min(points: list[tuple[float, float]]) -> float:
    t, v = np.array(points).T
    return float(np.polyfit(t / 60.0, v, 1)[0])


def fit_slopes(samples: list[dict], redis_settled_at: float) -> list[dict]:
    """One row per series: slope/min over its window, the threshold, pass/skip."""
    if not samples:
        return []
    half = samples[-1]["t"] / 2
    rows = []
    for key, points in sorted(series(samples).items()):
        kind = key.split("/", 1)[0]
        start = max(half, points[0][0] + SETTLE_S)
        if kind in RELATIVE:
            start = max(start, redis_settled_at)
        window = [p for p in points if p[0] >= start]
        row: dict = {"series": key, "points": len(window), "from_s": round(start)}
        if len(window) < MIN_POINTS:
            rows.append({**row, "status": "skipped (too few points)"})
            continue
        slope = slope_per_min(window)
        mean = float(np.mean([v for _, v in window]))
        if kind not in RELATIVE and kind not in THRESHOLDS:  # reported, not judged
            rows.append({**row, "slope_per_min": round(slope, 3), "status": "reported"})
            continue
        minutes = max((window[-1][0] - window[0][0]) / 60, 1e-9)
        limit = (
            RELATIVE[kind] * max(mean, 1.0)
            if kind in RELATIVE
            else max(THRESHOLDS[kind], MIN_GROWTH[kind] / minutes)
        )
        ok = slope <= limit
        rows.append(
            {
                **row,
                "slope_per_min": round(slope, 3),
                "limit_per_min": round(limit, 3),
                "mean": round(mean, 1),
                "status": "ok" if ok else "LEAK",
            }
        )
    return rows


def attributed(r: Outcome, faults: list[Fault]) -> str | None:
    """The kill a failed request may be laid to: in flight at the kill, or sent just after."""
    for f in faults:
        if (
            f.name in KILLS
            and f.end
            and r.start <= f.start + KILL_GRACE_S
            and (r.end or 0) >= f.start
        ):
            return f.name
    return None


def tag_windows(ledger: Ledger, faults: list[Fault]) -> dict[str, dict[str, int]]:
    """Mark each request with the fault windows it overlapped; `class status` counts per
    window (a dead replica's 503 shows as `rejected 503`, a burst's refusal as `rejected 429`)."""
    per: dict[str, dict[str, int]] = {f.name: {} for f in faults}
    for r in ledger.records.values():
        r.faults = [f.name for f in faults if f.end and f.covers(r.start, r.end or r.start)]
        key = f"{r.cls or 'unclosed'}" + (f" {r.status}" if r.status else "")
        for name in r.faults:
            per[name][key] = per[name].get(key, 0) + 1
    return per


def conditions(
    ledger: Ledger, faults: list[Fault], slopes: list[dict], kv_end: dict, min_requests: int
) -> list[dict]:
    """The Done-when checks, each {name, ok, detail}."""
    fails = ledger.failures()
    outside = [r for r in fails if attributed(r, faults) is None]
    on_llm = [r for r in fails if attributed(r, faults) == "llm_replica_kill"]
    victims = {n for f in faults if f.name == "ingress_kill" for n in f.facts.get("victim", [])}
    on_ingress = [r for r in fails if attributed(r, faults) == "ingress_kill"]
    astray = [r for r in on_ingress if r.ingress is not None and r.ingress not in victims]
    leaks = [s["series"] for s in slopes if s["status"] == "LEAK"]
    blocks = {n: v for n, v in kv_end.items() if v[0] is None or v[0] != v[1]}
    unrecovered = [f"{f.name}: {f.error}" for f in faults if f.recovered_s is None]
    surprises = ledger.unexpected_accepts() + ledger.unexpected_4xx()
    return [
        _c("requests sent", ledger.sent >= min_requests, f"{ledger.sent} (need >= {min_requests})"),
        _c("every request accounted for", ledger.adds_up(), str(ledger.summary()["classes"])),
        _c("no 5xx/transport error outside the kills", not outside, _rows(outside)),
        _c(
            "the LLM kill's failures are clean error events",
            all(r.cls == "stream_error" for r in on_llm),
            _rows([r for r in on_llm if r.cls != "stream_error"]),
        ),
        _c(
            "the ingress kill's failures were on the killed ingress",
            not astray,
            f"{len(on_ingress)} on it; astray {_rows(astray)}",
        ),
        _c("4xx exactly for the invalid bodies", not surprises, _rows(surprises)),
        _c(
            "every fault recovered within its deadline",
            not unrecovered,
            "; ".join(unrecovered) or ", ".join(f"{f.name} {f.recovered_s}s" for f in faults),
        ),
        _c("no series above its leak threshold", not leaks, ", ".join(leaks)),
        _c("every KV block free at the end", bool(kv_end) and not blocks, str(kv_end)),
    ]


def _c(name: str, ok: bool, detail: str) -> dict:
    return {"name": name, "ok": bool(ok), "detail": detail[:600]}


def _rows(rows: list[Outcome]) -> str:
    head = [f"#{r.rid} {r.kind} {r.cls} {r.status} {r.detail[:80]!r}" for r in rows[:5]]
    return f"{len(rows)}: " + "; ".join(head) if rows else "none"
