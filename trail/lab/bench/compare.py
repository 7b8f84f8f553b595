"""`trail bench compare`: the side-by-side HTTP comparison of policies and routers.

Order of work: measure the saturation throughput (closed loop, FCFS, 1 replica), derive the
rates from it, then for each policy one fresh app and every rate in turn; the c sweep (policy
`trail`) and the routers (2 replicas, policy `trail`) at one rate each. Every run uses the same
requests and the same arrival pattern (stretched to its rate), so differences are the policy's.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from trail.lab.bench.app_launcher import AppLauncher, app_args
from trail.lab.bench.loadgen import save_jsonl
from trail.lab.bench.run_summary import SLO, steady_tok_s
from trail.lab.bench.runner import LoadSpec, run_closed, run_open, warmup

ALL_POLICIES = ["fcfs", "sjf-prompt", "trail-prompt", "trail", "trail-oracle"]


@dataclass
class Plan:
    policies: list[str]
    loads: list[float]  # fractions of the 1-replica saturation throughput (req/s)
    c_values: list[float]  # extra c values for `trail` at the top load (0.8 is the main run)
    routers: list[str]  # 2-replica comparison, policy `trail`
    router_loads: list[float]  # fractions of the 2-replica saturation throughput
    spec: LoadSpec
    sat_n: int = 24
    saturation_req_s: float | None = None  # set: reuse a measured value (1 replica)
    max_num_seqs: int = 4
    c: float = 0.8
    replicas_2: int = 2
    model: str = "smollm2"
    slo: SLO = field(default_factory=lambda: SLO(ttft_s=10.0, latency_s=30.0))


def quick_plan(spec: LoadSpec) -> Plan:
    """~5 min: FCFS, TRAIL, TRAIL+ at one load above saturation (a queue forms), 1 replica."""
    return Plan(["fcfs", "trail", "trail-oracle"], [1.6], [], [], [], spec, sat_n=12)


def full_plan(spec: LoadSpec) -> Plan:
    """~30 min: 5 policies x 2 loads, c sweep at the top load, 3 routers with 2 replicas."""
    return Plan(
        ALL_POLICIES,
        [1.0, 1.6],
        [0.0, 0.5, 1.0],
        ["trail", "pow2", "round_robin"],
        [1.25],
        spec,
        sat_n=16,
    )


class Compare:
    """Runs a plan and keeps every result in `self.results` (also written as it goes)."""

    def __init__(self, plan: Plan, out: Path, log: Callable[[str], None] = print) -> None:
        self.plan, self.out, self.log = plan, out, log
        self.results: dict = {"meta": self._meta(), "saturation": {}, "runs": []}
        self.deployed: dict | None = None
        self.app: AppLauncher | None = None

    def _meta(self) -> dict:
        p = self.plan
        plan = {k: v for k, v in asdict(p).items() if k not in ("spec", "slo")}
        return {
            "plan": plan,
            "spec": p.spec.to_dict(),
            "slo": asdict(p.slo),
            "machine": f"{platform.machine()} {platform.processor() or ''} "
            f"{_cpus()} CPUs, python {platform.python_version()}",
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def run(self) -> dict:
        t0 = time.perf_counter()
        p = self.plan
        with AppLauncher() as app:
            self.app = app
            sat1 = p.saturation_req_s or self.saturation("fcfs", "trail", 1)
            for policy in p.policies:
                for load in p.loads:
                    self.open_run("policy", policy, "trail", 1, p.c, load, sat1)
            for c in p.c_values:
                self.open_run("c", "trail", "trail", 1, c, max(p.loads), sat1)
            if p.routers:
                sat2 = self.saturation("trail", p.routers[0], p.replicas_2)
                for router in p.routers:
                    for load in p.router_loads:
                        self.open_run("router", "trail", router, p.replicas_2, p.c, load, sat2)
        self.results["meta"]["wall_s"] = time.perf_counter() - t0
        self._write()
        return self.results

    def _deploy(self, policy: str, router: str, replicas: int, c: float) -> float:
        key = {"policy": policy, "router": router, "replicas": replicas, "c": c}
        if key == self.deployed:
            return 0.0
        assert self.app is not None
        self.log(f"deploy {key}")
        args = app_args(policy, router, replicas, c, self.plan.model, self.plan.max_num_seqs)
        seconds = self.app.deploy(args)
        warmup(self.app.url, "smollm2", self.plan.spec.endpoint, k=2 * replicas)
        self.deployed = key
        self.log(f"  ready in {seconds:.0f}s")
        return seconds

    def saturation(self, policy: str, router: str, replicas: int) -> float:
        """Closed loop, 2x max_num_seqs per replica in flight. The saturation rate (req/s) is
        the steady token rate (start-up and drain tail left out) over the mean output length
        of the benchmark's request set, so that load 1.0 offers exactly that many tokens/s."""
        p = self.plan
        deploy_s = self._deploy(policy, router, replicas, p.c)
        spec = LoadSpec(**{**p.spec.to_dict(), "n": p.sat_n})
        conc = 2 * p.max_num_seqs * replicas
        assert self.app is not None
        records, summary = run_closed(
            self.app.url,
            "smollm2",
            spec,
            conc,
            policy == "trail-oracle",
            p.slo,
            label=f"saturation x{replicas}",
        )
        save_jsonl(
            records, self.out / "runs" / f"saturation_{replicas}.jsonl", {"replicas": replicas}
        )
        steady = steady_tok_s([r.to_dict() for r in records], p.max_num_seqs * replicas)
        mean_out = float(np.mean([r.out_tokens for r in p.spec.requests()]))
        sat = steady / mean_out
        summary.update(
            {
                "policy": policy,
                "router": router,
                "concurrency": conc,
                "deploy_s": deploy_s,
                "steady_tok_s": steady,
                "mean_out_tokens": mean_out,
                "saturation_req_s": sat,
            }
        )
        self.results["saturation"][str(replicas)] = summary
        self.log(
            f"  saturation x{replicas}: {steady:.1f} tok/s steady "
            f"({summary.get('throughput_tok_s', 0):.1f} overall) = {sat:.3f} req/s"
        )
        self._write()
        return sat

    def open_run(
        self, group: str, policy: str, router: str, replicas: int, c: float, load: float, sat: float
    ) -> dict:
        p = self.plan
        deploy_s = self._deploy(policy, router, replicas, c)
        rate = load * sat
        name = f"{group}_{policy}_{router}_x{replicas}_c{c:g}_load{load:g}"
        assert self.app is not None
        records, summary = run_open(
            self.app.url, "smollm2", p.spec, rate, policy == "trail-oracle", p.slo, label=name
        )
        path = self.out / "runs" / f"{name}.jsonl"
        row = {"group": group, "policy": policy, "router": router, "replicas": replicas, "c": c}
        row.update({"load": load, "rate": rate, "deploy_s": deploy_s})
        save_jsonl(records, path, row)
        self.results["runs"].append(
            {**row, "jsonl": str(path.relative_to(self.out)), "summary": summary}
        )
        self.log(
            f"  {name}: mean {summary.get('mean_latency_s', float('nan')):.2f}s "
            f"TTFT {summary.get('mean_ttft_s', float('nan')):.2f}s errors {summary['errors']}"
        )
        self._write()
        return summary

    def _write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def write_outputs(results: dict, out: Path) -> list[Path]:
    """report.md (tables + headline) and the PNGs, from results.json's content."""
    from trail.lab.bench import compare_plots as plots
    from trail.lab.bench import report

    (out / "report.md").write_text(report.markdown(results))
    return [
        out / "report.md",
        *plots.all_plots(results, out, report.top_complete_load(results["runs"])),
    ]
