"""The comparison's tables and headline ratios, from results.json alone (re-runnable offline)."""

from __future__ import annotations

import math

KEYS = ["mean_latency_s", "p99_latency_s", "mean_ttft_s"]


def _get(run: dict | None, key: str) -> float:
    v = (run or {}).get("summary", {}).get(key)
    return float(v) if v is not None else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def find(runs: list[dict], **match: object) -> dict | None:
    for r in runs:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def top_complete_load(runs: list[dict]) -> float | None:
    """The highest load at which every FCFS request completed."""
    loads = [
        r["load"]
        for r in runs
        if r["group"] == "policy" and r["policy"] == "fcfs" and r["summary"].get("errors") == 0
    ]
    return max(loads) if loads else None


def headline(results: dict) -> dict:
    """The issue's goal ratios (NaN where a run is missing)."""
    runs = results["runs"]
    load = top_complete_load(runs)
    pol = {r["policy"]: r for r in runs if r["group"] == "policy" and r["load"] == load}
    top = max((r["load"] for r in runs if r["group"] == "policy"), default=None)
    sat = {r["policy"]: r for r in runs if r["group"] == "policy" and r["load"] == top}
    fcfs, trail, oracle = pol.get("fcfs"), pol.get("trail"), pol.get("trail-oracle")
    routers = {r["router"]: r for r in runs if r["group"] == "router"}
    out = {
        "load": load,
        "fcfs_over_trail_mean_latency": _ratio(
            _get(fcfs, "mean_latency_s"), _get(trail, "mean_latency_s")
        ),
        "fcfs_over_trail_mean_ttft": _ratio(_get(fcfs, "mean_ttft_s"), _get(trail, "mean_ttft_s")),
        "trail_over_oracle_mean_latency": _ratio(
            _get(trail, "mean_latency_s"), _get(oracle, "mean_latency_s")
        ),
        "trail_over_oracle_mean_ttft": _ratio(
            _get(trail, "mean_ttft_s"), _get(oracle, "mean_ttft_s")
        ),
        "p99_trail_over_fcfs": _ratio(_get(trail, "p99_latency_s"), _get(fcfs, "p99_latency_s")),
        "throughput_load": top,
        "throughput_trail_over_fcfs": _ratio(
            _get(sat.get("trail"), "throughput_tok_s"), _get(sat.get("fcfs"), "throughput_tok_s")
        ),
        "pow2_over_trail_router_mean_latency": _ratio(
            _get(routers.get("pow2"), "mean_latency_s"),
            _get(routers.get("trail"), "mean_latency_s"),
        ),
        "round_robin_over_trail_router_mean_latency": _ratio(
            _get(routers.get("round_robin"), "mean_latency_s"),
            _get(routers.get("trail"), "mean_latency_s"),
        ),
    }
    return out


def rows(results: dict) -> list[dict]:
    """One row per run with ratios: FCFS/x (same load, 1 replica) and pow2/x (same load)."""
    runs = results["runs"]
    out = []
    for r in runs:
        s = r["summary"]
        if r["group"] == "router":
            base = find(runs, group="router", router="pow2", load=r["load"])
            base_name = "pow2"
        else:
            base = find(runs, group="policy", policy="fcfs", load=r["load"])
            base_name = "fcfs"
        row = {k: r[k] for k in ("group", "policy", "router", "replicas", "c", "load", "rate")}
        row.update(
            {
                k: s.get(k)
                for k in (
                    "completed",
                    "errors",
                    "mean_latency_s",
                    "p50_latency_s",
                    "p90_latency_s",
                    "p99_latency_s",
                    "mean_ttft_s",
                    "p99_ttft_s",
                    "mean_tpot_s",
                    "throughput_tok_s",
                    "goodput_req_s",
                    "wrong_length",
                )
            }
        )
        row["base"] = base_name
        for k in KEYS:
            row[f"{base_name}_over_{k}"] = _ratio(_get(base, k), _get(r, k))
        out.append(row)
    return out


def _f(v: object, fmt: str = "{:.2f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v) if isinstance(v, float) else str(v)


def markdown(results: dict) -> str:
    """Tables for docs/benchmarks.md: saturation, every run with its ratios, the headline."""
    lines = [
        "| replicas | policy | router | in flight | steady tok/s | overall tok/s | "
        "saturation req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, s in results["saturation"].items():
        lines.append(
            f"| {k} | {s['policy']} | {s['router']} | {s.get('concurrency')} | "
            f"{_f(s.get('steady_tok_s'), '{:.1f}')} | {_f(s.get('throughput_tok_s'), '{:.1f}')} | "
            f"{_f(s.get('saturation_req_s'), '{:.3f}')} |"
        )
    lines += [
        "",
        "| group | policy | router | x | c | load | rate | done | mean lat | P50 | P90 | P99 "
        "| mean TTFT | P99 TTFT | TPOT | tok/s | goodput | base/x mean | base/x TTFT | base/x P99 |",
        "|" + "---|" * 20,
    ]
    for r in rows(results):
        b = r["base"]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["group"],
                    r["policy"],
                    r["router"],
                    str(r["replicas"]),
                    _f(r["c"], "{:g}"),
                    _f(r["load"], "{:g}"),
                    _f(r["rate"], "{:.3f}"),
                    f"{r['completed']}/{r['completed'] + r['errors']}"
                    + (f" ({r['wrong_length']} len≠)" if r.get("wrong_length") else ""),
                    _f(r["mean_latency_s"]),
                    _f(r["p50_latency_s"]),
                    _f(r["p90_latency_s"]),
                    _f(r["p99_latency_s"]),
                    _f(r["mean_ttft_s"]),
                    _f(r["p99_ttft_s"]),
                    _f(r["mean_tpot_s"], "{:.3f}"),
                    _f(r["throughput_tok_s"], "{:.1f}"),
                    _f(r["goodput_req_s"], "{:.3f}"),
                    _f(r[f"{b}_over_mean_latency_s"], "{:.2f}×") + f" ({b})",
                    _f(r[f"{b}_over_mean_ttft_s"], "{:.2f}×"),
                    _f(r[f"{b}_over_p99_latency_s"], "{:.2f}×"),
                ]
            )
            + " |"
        )
    h = headline(results)
    lines += [
        "",
        f"Headline (load {_f(h['load'], '{:g}')} of saturation, the highest FCFS completes):",
        "",
    ]
    names = {
        "fcfs_over_trail_mean_latency": "FCFS/TRAIL mean latency",
        "fcfs_over_trail_mean_ttft": "FCFS/TRAIL mean TTFT",
        "trail_over_oracle_mean_latency": "TRAIL/TRAIL+ mean latency",
        "trail_over_oracle_mean_ttft": "TRAIL/TRAIL+ mean TTFT",
        "p99_trail_over_fcfs": "P99 latency TRAIL/FCFS",
        "throughput_trail_over_fcfs": f"throughput TRAIL/FCFS at load {_f(h['throughput_load'], '{:g}')}",
        "pow2_over_trail_router_mean_latency": "2 replicas: Ray P2C / ours, mean latency",
        "round_robin_over_trail_router_mean_latency": "2 replicas: round robin / ours, mean latency",
    }
    lines += ["| ratio | value |", "|---|---|"]
    lines += [f"| {label} | {_f(h[k], '{:.2f}×')} |" for k, label in names.items()]
    return "\n".join(lines) + "\n"


def print_summary(console, summary: dict, title: str) -> None:  # noqa: ANN001 - rich Console
    """One run's summary as a two-column table."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        t.add_row(k, _f(v, "{:.3f}") if isinstance(v, float) else str(v))
    console.print(t)
