"""From the experiment's cells to the report: per policy and load, absolute figures, ratios to
FCFS (and to a reference policy, by default the oracle) with 95 % intervals, overall and per length bucket."""

from __future__ import annotations

from typing import Any

import numpy as np

from trail.lab.bench.experiment import Cells, Grid, decode_steps_at
from trail.lab.stats.intervals import BUCKETS, STATS, bucket_of, ratio_interval

# (name in the report, per-request field, statistic); FCFS / policy: above 1 = policy better
RATIOS = (
    ("mean_latency", "latency_s", "mean"),
    ("p99_latency", "latency_s", "p99"),
    ("mean_ttft", "ttft_s", "mean"),
    ("mean_ttst", "ttst_s", "mean"),  # time to the second token: no one-token illusion
    ("mean_tpot", "tpot_s", "mean"),
    ("p99_stall", "max_stall_s", "p99"),
)


def request_arrays(cell: dict) -> dict[str, np.ndarray]:
    """Per-request fields in request order (q0, q1, ...), so cells of one seed line up."""
    reqs = cell["requests"]
    ids = sorted(reqs, key=lambda r: int(r[1:]))
    fields = ("latency_s", "ttft_s", "tpot_s", "max_stall_s", "length", "preemptions")
    out = {f: np.array([float(reqs[i].get(f, 0.0)) for i in ids]) for f in fields}
    out["ttst_s"] = np.array([second_token_s(reqs[i]) for i in ids])
    return out


def waiting_tau(cells: list[dict]) -> float | None:
    """Kendall tau of the rank each request had when admitted to decode vs its true length,
    per seed, averaged: how well the policy ordered its waiting queue. None where no rank was
    recorded or all ranks tie (FCFS ranks nobody)."""
    from scipy.stats import kendalltau

    taus = []
    for cell in cells:
        pairs = [
            (r["admitted_rank"], r["length"])
            for r in cell["requests"].values()
            if "admitted_rank" in r
        ]
        if len(pairs) > 2 and len({p[0] for p in pairs}) > 1:
            taus.append(float(kendalltau(*zip(*pairs, strict=True))[0]))
    return float(np.mean(taus)) if taus else None


def second_token_s(r: dict) -> float:
    """Time to the second token (to the end, for a one-token answer): a parked request has its
    first token but not its answer. Cells recorded before the stepper kept it: the first."""
    if "second_token_s" not in r:
        return float(r.get("ttft_s", 0.0))
    second = r["second_token_s"]
    return float((second if second is not None else r["finish_s"]) - r["arrival_s"])


def analyse(grid: Grid, cells: Cells, reference: str = "trail-oracle") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for load in grid.loads:
        got = {
            label: {s: cells.get(s, load, label) for s in grid.seeds}
            for label, _, _ in grid.policies
        }
        got = {k: v for k, v in got.items() if all(c is not None for c in v.values())}
        if "fcfs" not in got:
            continue
        arrays = {k: {s: request_arrays(c) for s, c in v.items()} for k, v in got.items()}
        out[f"{load:g}"] = {
            label: policy_row(label, got, arrays, reference if reference in arrays else None)
            for label in got
        }
    return out


def policy_row(label: str, got: dict, arrays: dict, reference: str | None) -> dict[str, Any]:
    base, mine = arrays["fcfs"], arrays[label]
    seeds = sorted(mine)
    summaries = [got[label][s]["summary"] for s in seeds]
    row: dict[str, Any] = {
        "mean_latency_s": _mean(summaries, "mean_latency_s"),
        "p99_latency_s": _mean(summaries, "p99_latency_s"),
        "mean_ttft_s": _mean(summaries, "mean_ttft_s"),
        "throughput_tok_s": _mean(summaries, "throughput_tok_s"),
        "throughput_vs_fcfs": _mean(summaries, "throughput_tok_s")
        / _mean([got["fcfs"][s]["summary"] for s in seeds], "throughput_tok_s"),
        "full_batch_step_ms": _mean_or_none([full_batch_step_ms(got[label][s]) for s in seeds]),
        "longest_stall_s": max(float(mine[s]["max_stall_s"].max()) for s in seeds),
        "waiting_tau": waiting_tau([got[label][s] for s in seeds]),
        "preemptions": int(sum(s["preemptions"] for s in summaries)),
        "parks": int(sum(s.get("parks", 0) for s in summaries)),
        "preemptions_by_reason": _sum_reasons(summaries),
        "recomputed_tokens": int(sum(s["recomputed_tokens"] for s in summaries)),
        "requests": int(sum(len(mine[s]["latency_s"]) for s in seeds)),
        "fcfs_over": {},
        "fcfs_over_by_bucket": {},
    }
    for name, f, stat in RATIOS:
        row["fcfs_over"][name] = ratio_interval(
            _field(base, f), _field(mine, f), STATS[stat]
        ).as_dict()
    for bucket in BUCKETS:
        b, m = _bucket(base, mine, bucket)
        if b:
            row["fcfs_over_by_bucket"][bucket] = {
                "requests": int(sum(len(v) for v in b.values())),
                "mean_latency": ratio_interval(b, m).as_dict(),
            }
    if reference is not None and label != reference:
        lat = _field(mine, "latency_s")
        row["reference"] = reference
        row["over_reference_mean_latency"] = ratio_interval(
            lat, _field(arrays[reference], "latency_s")
        ).as_dict()
    return row


def _field(by_seed: dict, f: str) -> dict[int, np.ndarray]:
    return {s: a[f] for s, a in by_seed.items()}


def _bucket(base: dict, mine: dict, bucket: str) -> tuple[dict, dict]:
    """Latencies of one length bucket (by the request's true length), seeds without any left out."""
    b, m = {}, {}
    for s in base:
        keep = bucket_of(base[s]["length"].astype(int)) == bucket
        if keep.any():
            b[s], m[s] = base[s]["latency_s"][keep], mine[s]["latency_s"][keep]
    return b, m


def full_batch_step_ms(cell: dict) -> float | None:
    """The median decode-only step at the cell's fullest batch: the machine's speed during the
    cell. In overload a 10 % slower step moves mean latency by far more than 10 %, so a ratio
    between two cells is read beside their step times."""
    steps = cell.get("steps", [])
    full = max((s["decode_seqs"] for s in steps if s["prefill_tokens"] == 0), default=0)
    if not full:
        return None
    return 1000 * float(np.median(decode_steps_at(steps, full)))


def _mean_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _sum_reasons(rows: list[dict]) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in rows:
        for k, v in r.get("preemptions_by_reason", {}).items():
            total[k] = total.get(k, 0) + int(v)
    return total


GOALS = (  # (what, how to read it from a load's rows, target, higher is better)
    ("FCFS/TRAIL mean latency", lambda r: r["trail"]["fcfs_over"]["mean_latency"], 2.0, True),
    ("FCFS/TRAIL mean TTFT", lambda r: r["trail"]["fcfs_over"]["mean_ttft"], 10.0, True),
    ("TRAIL/TRAIL+ mean latency", lambda r: _over(r["trail"], "trail-oracle"), 1.10, False),
    ("FCFS/TRAIL P99 latency", lambda r: r["trail"]["fcfs_over"]["p99_latency"], 1.0, True),
    ("TRAIL/FCFS throughput", lambda r: {"value": r["trail"]["throughput_vs_fcfs"]}, 0.97, True),
)


def _over(row: dict[str, Any], reference: str) -> dict[str, Any]:
    if row.get("reference") != reference:
        raise KeyError(reference)
    return row["over_reference_mean_latency"]


def goals(table: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals at the highest load that has a trail row."""
    loads = [ld for ld, rows in table.items() if "trail" in rows]
    if not loads:
        return []
    load = max(loads, key=float)
    rows = table[load]
    out = []
    for what, read, target, higher in GOALS:
        try:
            got = read(rows)
        except KeyError:
            continue
        met = got["value"] >= target if higher else got["value"] <= target
        out.append({"load": load, "goal": what, "target": target, **got, "met": bool(met)})
    return out
