"""M/G/1 preemptive-resume simulation of FCFS, SRPT and SPRPT with limited preemption.

One unit of work is one token and the server does one unit per unit time, so a job's "age" is
its `generated` count. Two implementations share one semantics:

* `simulate_with_policy` asks `trail.policy` (order_waiting, plan_preemptions) at every event:
  the single truth for ranking, and slow (it sorts the queue at every event);
* `simulate_fast` replays the same decisions with a heap, fast enough for millions of jobs; the
  tests check that both give identical departures on small instances.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from trail.lab.sim.distributions import Array, PredictionModel, SizeDist
from trail.policy import (
    Capacity,
    LengthState,
    PolicyConfig,
    get_policy,
    order_waiting,
    plan_preemptions,
)

MG1_POLICIES = ("fcfs", "srpt", "sprpt-lp")


def policy_config(policy: str, c: float = math.inf) -> PolicyConfig:
    """The `trail.policy` setting that is each M/G/1 policy (unbounded preemptions, no margin)."""
    if policy == "fcfs":
        return get_policy("fcfs")
    unbounded = {"margin_tokens": 0.0, "max_preemptions": 10**9}
    if policy == "srpt":
        return get_policy("trail-oracle", c=math.inf, **unbounded)
    if policy == "sprpt-lp":
        return get_policy("trail-prompt", c=c, preemptive=c > 0, **unbounded)
    raise ValueError(f"unknown M/G/1 policy {policy!r}; choose one of {MG1_POLICIES}")


@dataclass
class Jobs:
    """An arrival sequence: arrival times, true sizes and predicted sizes."""

    arrival: Array
    size: Array
    pred: Array

    @classmethod
    def poisson(
        cls, rng: np.random.Generator, size: SizeDist, pred: PredictionModel, load: float, n: int
    ) -> Jobs:
        lam = load / size.mean
        arrival = np.cumsum(rng.exponential(1.0 / lam, n))
        sizes = size.sample(rng, n)
        return cls(arrival, sizes, pred.sample(rng, sizes))


@dataclass
class Mg1Result:
    departure: Array
    preemptions: Array
    area: float  # integral of the number in system over time, kept by the event loop itself

    def response(self, jobs: Jobs) -> Array:
        return self.departure - jobs.arrival


def simulate_with_policy(jobs: Jobs, cfg: PolicyConfig) -> Mg1Result:
    """Event loop that delegates every ordering and preemption decision to `trail.policy`."""
    n = len(jobs.arrival)
    states = [
        LengthState(str(i), float(a), initial_pred=float(p), true_total=float(x))  # type: ignore[arg-type]
        for i, (a, p, x) in enumerate(zip(jobs.arrival, jobs.pred, jobs.size, strict=True))
    ]
    departure, area = np.empty(n), 0.0
    waiting: list[LengthState] = []
    current: LengthState | None = None
    now, i = 0.0, 0
    while i < n or current is not None:
        t_done = now + (current.true_total - current.generated) if current else math.inf  # type: ignore[operator]
        t_next = min(t_done, jobs.arrival[i] if i < n else math.inf)
        area += (len(waiting) + (current is not None)) * (t_next - now)
        if current is not None:
            current.generated += t_next - now  # type: ignore[assignment]
        now = t_next
        if i < n and jobs.arrival[i] < t_done:
            arriving = states[i]
            i += 1
            arriving.enter_waiting(now)
            waiting.append(arriving)
            if current is not None:
                ranked = order_waiting(waiting, now, cfg)
                if plan_preemptions([current], ranked, Capacity(0), now, cfg):
                    current.preemptions += 1
                    current.enter_waiting(now)
                    waiting.append(current)
                    current = _start(ranked[0], waiting, now)
                continue
        else:
            assert current is not None
            departure[int(current.request_id)] = now
            current = None
        if current is None and waiting:
            current = _start(order_waiting(waiting, now, cfg)[0], waiting, now)
    return Mg1Result(departure, np.array([s.preemptions for s in states]), area)


def _start(s: LengthState, waiting: list[LengthState], now: float) -> LengthState:
    waiting.remove(s)
    s.leave_waiting(now)
    return s


def simulate_fast(jobs: Jobs, policy: str, c: float = math.inf) -> Mg1Result:
    """The same schedule as `simulate_with_policy(jobs, policy_config(policy, c))`, in O(n log n).

    Between events only the running job ages, so its rank only falls and no waiting job can come
    to beat it: a preemption can only happen at an arrival, and only for the new job.
    """
    if policy == "fcfs":
        return _fcfs_lindley(jobs)
    cfg = policy_config(policy, c)
    rank_base = jobs.size if policy == "srpt" else jobs.pred
    return _ranked_loop(jobs, rank_base, cfg.c if cfg.preemptive else -1.0)


def _ranked_loop(jobs: Jobs, rank_base: Array, c: float) -> Mg1Result:
    arr, size, base = jobs.arrival.tolist(), jobs.size.tolist(), rank_base.tolist()
    limit = (np.asarray(jobs.pred) * c if c >= 0 else np.full(len(arr), -1.0)).tolist()
    n = len(arr)
    age, departure, preempted = [0.0] * n, [0.0] * n, [0] * n
    heap: list[tuple[float, float, int]] = []
    cur, now, i, area = -1, 0.0, 0, 0.0
    while True:
        t_done = now + size[cur] - age[cur] if cur >= 0 else math.inf
        if i < n and arr[i] < t_done:
            t = arr[i]
            if cur < 0:
                cur, now, i = i, t, i + 1
                continue
            area += (len(heap) + 1) * (t - now)
            a = age[cur] + (t - now)
            age[cur], now = a, t
            cur_rank = max(base[cur] - a, 0.0)
            if a <= limit[cur] and base[i] < cur_rank:
                heapq.heappush(heap, (cur_rank, arr[cur], cur))
                preempted[cur] += 1
                cur = i
            else:
                heapq.heappush(heap, (base[i], arr[i], i))
            i += 1
        elif cur >= 0:
            area += (len(heap) + 1) * (t_done - now)
            departure[cur], now = t_done, t_done
            cur = heapq.heappop(heap)[2] if heap else -1
        else:
            break
    return Mg1Result(np.array(departure), np.array(preempted), area)


def _fcfs_lindley(jobs: Jobs) -> Mg1Result:
    """FCFS departures by the vectorised Lindley recursion D_n = max(D_{n-1}, A_n) + S_n."""
    work_done = np.cumsum(jobs.size)
    before = np.concatenate([[0.0], work_done[:-1]])
    departure = np.maximum.accumulate(jobs.arrival - before) + work_done
    area = float(np.sum(departure - jobs.arrival))
    return Mg1Result(departure, np.zeros(len(departure), dtype=int), area)
