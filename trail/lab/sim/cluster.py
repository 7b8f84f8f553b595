"""N simulated engines behind a router; one engine is the cluster with N = 1.

Arrivals are routed in time order. Before each routing decision only the engines with something
due by then are advanced; the others are mid-way through a run of identical decode steps, and
the `Board` tells their queue length and predicted work at any time by arithmetic. That keeps
the cost proportional to events, not to engines x arrivals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trail.lab.sim.engine import ROUTER_VIEW, Board, Engine, SimEngineConfig
from trail.lab.sim.workload import SimRequest
from trail.policy import PolicyConfig, predicted_remaining
from trail.policy.route import ReplicaViews, rank_replicas, remaining_hist

ROUTERS = ("round-robin", "power-of-two", "least-work", "slots")


class SimRouter:
    """Picks an engine for a request arriving at time t.

    `slots` is the batch-aware score of trail/policy/route.py (the Serve router's). It can run
    as `ingress` routers taking requests in turn, each ranking on its own snapshot of the
    engines refreshed every `stats_period_s` and adjusted only by its own dispatches since (what
    several Serve ingress replicas see); 0 s = every decision on fresh numbers.
    """

    def __init__(
        self,
        name: str,
        n: int,
        seed: int = 0,
        ingress: int = 1,
        stats_period_s: float = 0.0,
        prefill_weight: float = 1.0,
    ) -> None:
        if name not in ROUTERS:
            raise ValueError(f"unknown router {name!r}; choose one of {ROUTERS}")
        self.name, self.n = name, n
        self.rng = np.random.default_rng(seed)
        self.next = 0
        self.ingress, self.period, self.prefill_weight = ingress, stats_period_s, prefill_weight
        self.snapshots: list[tuple[float, ReplicaViews] | None] = [None] * ingress
        self.turn = 0

    def choose(
        self, t: float, board: Board, engines: Sequence[Engine], req: SimRequest | None = None
    ) -> int:
        if self.n == 1:
            return 0
        if self.name == "round-robin":
            self.next = (self.next + 1) % self.n
            return self.next
        if self.name == "power-of-two":
            a = int(self.rng.integers(self.n))
            b = int(self.rng.integers(self.n - 1))
            b += b >= a  # two distinct engines, without choice()'s O(n) permutation
            return a if board.qlen[a] <= board.qlen[b] else b
        if self.name == "slots":
            return self._slots(t, board, req)
        # least aggregate predicted remaining work; random among ties (e.g. idle engines)
        work = board.work_at(t)
        ties = np.flatnonzero(work <= work.min() + 1e-9)
        return int(ties[self.rng.integers(len(ties))])

    def _slots(self, t: float, board: Board, req: SimRequest | None) -> int:
        r = self.turn = (self.turn + 1) % self.ingress
        snap = self.snapshots[r]
        if snap is None or t - snap[0] >= self.period:
            snap = (t, board.views_at(t))
            self.snapshots[r] = snap
        views = snap[1]
        need = 0.0 if req is None else float(req.prompt_len + 1)  # KV to be admitted
        work = None if req is None else predicted_remaining(req.state, ROUTER_VIEW)
        tiebreak = self.rng.random(self.n)
        order = rank_replicas(views, need, self.prefill_weight, tiebreak, work)
        pick = int(order[0])
        if work is not None and self.period > 0:  # the router's own dispatches since the snapshot
            assert views.hist is not None and views.hist_steps is not None
            views.hist[pick] += remaining_hist([work + views.hist_steps[pick]])
            views.free_slots[pick] -= 1
            views.total_work[pick] += work
            views.waiting_work[pick] += work
            views.waiting_prefill[pick] += req.prompt_len
            views.kv_free_tokens[pick] -= need
        return pick


@dataclass
class ClusterResult:
    requests: list[SimRequest]
    engines: list[Engine]

    def summary(self, warmup: float = 0.1) -> dict[str, float]:
        """Latency statistics without the first `warmup` fraction of arrivals (the engines start
        empty); Little's law and throughput over the whole run."""
        done = [r for r in self.requests if not math.isnan(r.finish)]
        kept = done[int(len(done) * warmup) :]
        lat = np.array([r.finish - r.arrival for r in kept])
        ttft = np.array([r.first_token - r.arrival for r in kept])
        all_lat = np.array([r.finish - r.arrival for r in done])
        span = max(r.finish for r in done) - min(r.arrival for r in done)
        tokens = sum(r.output_len for r in done)
        area = sum(e.area for e in self.engines)
        return {
            "requests": len(done),
            "mean_latency_s": float(lat.mean()),
            "p50_latency_s": float(np.percentile(lat, 50)),
            "p90_latency_s": float(np.percentile(lat, 90)),
            "p99_latency_s": float(np.percentile(lat, 99)),
            "mean_ttft_s": float(ttft.mean()),
            "throughput_tok_s": tokens / span,
            "preemptions": float(sum(e.preemptions for e in self.engines)),
            "recomputed_tokens": float(sum(e.recomputed_tokens for e in self.engines)),
            "little_L": area / span,
            "little_lambda_W": len(done) / span * float(all_lat.mean()),
        }


def simulate_cluster(
    requests: list[SimRequest],
    n_engines: int,
    cfg: SimEngineConfig,
    policy: PolicyConfig,
    router: str = "round-robin",
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    ingress: int = 1,
    stats_period_s: float = 0.0,
) -> ClusterResult:
    """Serve `requests` (sorted by arrival) on `n_engines` identical engines to the end."""
    max_ctx = max(r.prompt_len + r.output_len for r in requests)
    if max_ctx + 1 > cfg.kv_tokens:
        raise ValueError(f"kv_tokens={cfg.kv_tokens} cannot hold a {max_ctx}-token request")
    board = Board(n_engines)
    engines = [Engine(i, cfg, policy, board, seed * 1000 + i) for i in range(n_engines)]
    chooser = SimRouter(router, n_engines, seed, ingress, stats_period_s, cfg.cost.prefill_weight)
    for k, req in enumerate(requests):
        t = req.arrival
        for e in np.flatnonzero(board.wake <= t):
            engines[e].advance(t)
        pick = chooser.choose(t, board, engines, req)
        engines[pick].deliver(req, t)
        if on_progress and k % 1000 == 999:
            on_progress(1000)
    for eng in engines:
        eng.advance(math.inf)
        assert eng.finished(), f"engine {eng.idx} stopped with work left"
    return ClusterResult(requests, engines)
