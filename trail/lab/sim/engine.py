"""An iteration-level batched LLM engine (vLLM v1-like), scheduled by `trail.policy`.

Each step decodes one token for every running request and prefills the newly admitted ones
(prompt + tokens already generated: preemption is recompute, as in vLLM v1). KV memory is counted
in blocks and grows by one token per request per step; when the next step would not fit,
`kv_pressure_victim` gives up its blocks. Waiting requests are ordered by `sort_key` and swapped in
by `plan_preemptions`, exactly the calls the vLLM scheduler makes.

Speed: between scheduling events (a completion, an arrival, KV exhaustion, or a refinement epoch
while someone waits) the batch does not change, so a run of identical decode steps is executed at
once ("macro-step"). Without aging this is exact: in between, running ranks only count down and
waiting ranks stay put, so no decision could change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trail.lab.sim.calibrate import CPU, decode_run, run_time, steps_within
from trail.lab.sim.lane import admit_with_lane
from trail.lab.sim.workload import SimRequest
from trail.policy import (
    Capacity,
    PolicyConfig,
    PredictionSource,
    StepCost,
    get_policy,
    kv_pressure_victim,
    plan_preemptions,
    predicted_remaining,
    sort_key,
)
from trail.policy.route import HIST_VALUES, ReplicaViews, remaining_hist


@dataclass(frozen=True)
class SimEngineConfig:
    max_num_seqs: int = 48
    kv_tokens: int = 32_768  # KV cache capacity in tokens (blocks * block_size)
    block_size: int = 16
    max_batched_tokens: int = 4096  # prefill token budget of one step
    refine_every: int = 8  # steps between probe refinements (the release's default)
    refine_sigma: float = 0.4  # lognormal error of the refined remaining-length estimate
    max_run_steps: int = (
        1 << 30
    )  # 1 = decide at every step (slow; tests that macro-steps are exact)
    prefix_caching: bool = True  # a preempted request's full blocks stay cached (vLLM default)
    cost: StepCost = CPU

    @property
    def kv_blocks(self) -> int:
        return self.kv_tokens // self.block_size


ROUTER_VIEW = get_policy("trail-prompt")  # what a router estimates work with, whatever the policy


class Board:
    """Per-engine numbers a router reads without touching the engines (vectorised)."""

    def __init__(self, n: int) -> None:
        self.wake = np.full(n, math.inf)  # next time the engine has something to do
        self.qlen = np.zeros(n)
        self.work0 = np.zeros(n)  # predicted remaining tokens at t0
        self.decoding = np.zeros(n)  # tokens/step by which work falls during the current run
        self.t0 = np.zeros(n)
        self.dt0 = np.ones(n)
        self.ddt = np.zeros(n)
        self.k = np.zeros(n)
        # what the slot-aware router reads (trail/policy/route.py)
        self.max_seqs = np.zeros(n)
        self.kv_free_tokens = np.full(n, np.inf)
        self.waiting_work = np.zeros(n)
        self.waiting_prefill = np.zeros(n)
        self.soonest0 = np.zeros(n)  # predicted remaining of the running request nearest its end
        self.hist0 = np.zeros((n, len(HIST_VALUES)))  # counts of predicted remaining at t0

    def steps_at(self, t: float) -> np.ndarray:
        """Decode steps each engine has done since its last decision, at time t."""
        elapsed = np.maximum(t - self.t0, 0.0)
        p = self.dt0 - self.ddt / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = np.floor((-p + np.sqrt(p * p + 2 * self.ddt * elapsed)) / self.ddt)
        steps = np.where(self.ddt > 0, quad, np.floor(elapsed / self.dt0))
        return np.clip(steps, 0, self.k)

    def views_at(self, t: float) -> ReplicaViews:
        steps = self.steps_at(t)
        return ReplicaViews(
            free_slots=self.max_seqs - self.qlen,
            kv_free_tokens=self.kv_free_tokens,
            total_work=self.work0 - self.decoding * steps,
            waiting_work=self.waiting_work,
            waiting_prefill=self.waiting_prefill,
            soonest_free=np.maximum(self.soonest0 - steps, 0.0),
            hist=self.hist0.copy(),
            hist_steps=steps,
        )

    def work_at(self, t: float) -> np.ndarray:
        return self.work0 - self.decoding * self.steps_at(t)

    def steps_at_one(self, i: int, t: float) -> float:
        elapsed = max(t - self.t0[i], 0.0)
        return min(steps_within(self.dt0[i], self.ddt[i], elapsed), self.k[i])

    def work_at_one(self, i: int, t: float) -> float:
        return max(self.work0[i] - self.decoding[i] * self.steps_at_one(i, t), 0.0)


class Engine:
    def __init__(
        self, idx: int, cfg: SimEngineConfig, policy: PolicyConfig, board: Board, seed: int
    ) -> None:
        self.idx, self.cfg, self.policy, self.board = idx, cfg, policy, board
        self.rng = np.random.default_rng(seed)
        self.clock = 0.0
        self.running: list[SimRequest] = []
        self.waiting: list[SimRequest] = []
        self.inbox: list[SimRequest] = []
        self.decided = True
        self.plan: tuple[float, float, int, list[SimRequest]] = (
            0.0,
            0.0,
            0,
            [],
        )  # dt0, ddt, k, prefill
        self.plan_end = math.inf
        self.area = 0.0  # integral of requests in system over time, for Little's law
        self.steps = 0
        self.preemptions = 0
        self.parks = 0
        self.recomputed_tokens = 0
        self._publish()  # an idle engine is visible to the router before its first request

    # ----- what the cluster calls -------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Run every step that ends by `t`; decide at boundaries once all arrivals there are in."""
        while True:
            if not self.decided:
                if self.clock >= t:
                    return
                self._decide()
            if self.plan_end > t or self.plan_end == math.inf:
                return
            self._execute(self.plan[2])

    def deliver(self, req: SimRequest, t: float) -> None:
        """A new request at time t joins at the first step boundary at or after t."""
        self.advance(t)
        if self.decided and self.plan_end == math.inf:
            self.clock = t  # idle: wake up now
            self.decided = False
        elif self.decided:
            dt0, ddt, k, _ = self.plan
            elapsed = t - self.clock
            j = steps_within(dt0, ddt, elapsed)
            j = j + 1 if run_time(dt0, ddt, j) < elapsed else j
            self._execute(max(1, min(j, k)))
        req.engine = self.idx
        req.state.prompt_tokens = req.prompt_len  # the lane's token budget
        req.state.enter_waiting(t)
        self.inbox.append(req)
        self._publish(added=req)

    def finished(self) -> bool:
        return not (self.running or self.waiting or self.inbox)

    # ----- scheduling at a step boundary ------------------------------------------------------
    def _decide(self) -> None:
        self._absorb_inbox()
        self.decided = True
        if not self.running and not self.waiting:
            self.plan, self.plan_end = (0.0, 0.0, 0, []), math.inf
            self._publish()
            return
        self._refine_running()
        self._relieve_kv()
        admitted = self._admit()
        self._plan_steps(admitted)
        self._publish()

    def _absorb_inbox(self) -> None:
        for req in self.inbox:
            self.area += self.clock - req.arrival
        self.waiting.extend(self.inbox)
        self.inbox.clear()

    def _refine_running(self) -> None:
        """Stand-in for the probe: every `refine_every` tokens a fresh noisy estimate of what is
        left (lognormal error), counting down in between, as in the release."""
        if self.policy.source is not PredictionSource.REFINED:
            return
        for req in self.running:
            if req.trace is not None:
                self._follow_trace(req)
                continue
            epoch = req.state.generated // self.cfg.refine_every
            if epoch > req.refine_epoch:
                req.refine_epoch = epoch
                noise = math.exp(self.cfg.refine_sigma * self.rng.standard_normal())
                req.state.refine(req.remaining * noise)

    def _follow_trace(self, req: SimRequest) -> None:
        """A traced request holds what the real predictor says at its current length (the
        trace has the served cadence's probe steps and count-downs in it), from g = 0 on once
        admitted, as the engine's first probe output comes with the prefill."""
        assert req.trace is not None
        g = min(req.state.generated, len(req.trace) - 1)
        req.state.refine(float(req.trace[g]), at=g)

    def _report_resources(self, req: SimRequest) -> None:
        """What the engine tells the policy: blocks held / needed, and what a preemption would
        recompute (with prefix caching, only the partial last block)."""
        held = req.prompt_len + req.state.generated
        req.state.kv_blocks = req.state.admit_blocks = self._blocks(held + 1)
        req.state.recompute_tokens = held % self.cfg.block_size if self.cfg.prefix_caching else held

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.cfg.block_size)

    def _kv_need(self, extra_steps: int = 0) -> int:
        return sum(
            self._blocks(r.prompt_len + r.state.generated + 1 + extra_steps) for r in self.running
        )

    def _relieve_kv(self) -> None:
        while self.running and self._kv_need() > self.cfg.kv_blocks:
            victim = kv_pressure_victim([r.state for r in self.running], self.policy)
            self._preempt(next(r for r in self.running if r.state is victim))

    def _preempt(self, req: SimRequest) -> None:
        self.running.remove(req)
        self._report_resources(req)
        held = req.prompt_len + req.state.generated
        req.cached_tokens = held - req.state.recompute_tokens
        req.state.preemptions += 1
        req.state.enter_waiting(self.clock)
        self.waiting.append(req)
        self.preemptions += 1

    def _take(self, ranked: list[SimRequest], limit: int | None) -> list[SimRequest]:
        """Admit in order while a slot (`limit`), KV blocks and the prefill budget allow."""
        admitted: list[SimRequest] = []
        free_blocks = self.cfg.kv_blocks - self._kv_need()
        budget = self.cfg.max_batched_tokens
        for req in ranked:
            tokens = req.prompt_len + req.state.generated
            blocks = self._blocks(tokens + 1)
            new = tokens - req.cached_tokens  # what the step computes: a cache hit is free
            full = limit is not None and len(self.running) >= limit
            if full or blocks > free_blocks or (new > budget and admitted):
                break
            free_blocks, budget = free_blocks - blocks, budget - new
            self.waiting.remove(req)
            if req.state.generated and req.state.waiting_since is not None:
                req.max_stall = max(req.max_stall, self.clock - req.state.waiting_since)
            req.state.leave_waiting(self.clock)
            self.running.append(req)
            admitted.append(req)
        return admitted

    def _admit(self) -> list[SimRequest]:
        if not self.waiting:
            return []
        if self.policy.rank_lane_seqs > 0:
            return admit_with_lane(self)
        ranked = sorted(self.waiting, key=lambda r: sort_key(r.state, self.clock, self.policy))
        for req in self.running + ranked:
            self._report_resources(req)
        room = Capacity(
            self.cfg.max_num_seqs - len(self.running), self.cfg.kv_blocks - self._kv_need()
        )
        plans = plan_preemptions(
            [r.state for r in self.running],
            [r.state for r in ranked],
            room,
            self.clock,
            self.policy,
            self.cfg.cost,
        )
        for p in plans:
            self._preempt(next(r for r in self.running if r.state is p.victim))
        return self._take(ranked, limit=self.cfg.max_num_seqs)

    # ----- executing steps --------------------------------------------------------------------
    def _plan_steps(self, admitted: list[SimRequest]) -> None:
        n = len(self.running)
        if not n:
            big = min(self.waiting, key=lambda r: r.prompt_len + r.state.generated)
            raise ValueError(
                f"request {big.state.request_id} can never fit the KV cache ({self.cfg.kv_tokens} tokens)"
            )
        ctx = sum(r.prompt_len + r.state.generated for r in self.running)
        if admitted:
            prefill = sum(r.prompt_len + r.state.generated - r.cached_tokens for r in admitted)
            self.recomputed_tokens += sum(
                r.prompt_len + r.state.generated - r.cached_tokens
                for r in admitted
                if r.state.preemptions or r.state.parks
            )
            for r in admitted:
                r.cached_tokens = 0
            dt0 = self.cfg.cost.step_seconds(prefill, n - len(admitted), ctx - prefill)
            self.plan = (dt0, 0.0, 1, admitted)
        else:
            k = min(min(r.remaining for r in self.running), self.cfg.max_run_steps)
            if self.waiting:
                k = min(k, self.cfg.refine_every)
            k = self._steps_before_kv_full(k)
            dt0, ddt = decode_run(self.cfg.cost, n, ctx)
            self.plan = (dt0, ddt, k, [])
        dt0, ddt, k, _ = self.plan
        self.plan_end = self.clock + run_time(dt0, ddt, k)

    def _steps_before_kv_full(self, k: int) -> int:
        """Largest j <= k such that steps 0..j-1 all fit in the KV cache (at least 1)."""
        n, free = len(self.running), self.cfg.kv_blocks - self._kv_need()
        if free >= n * (k // self.cfg.block_size + 1):
            return k
        lo, hi = 1, k  # step 0 fits (relieved); find the last fitting step index + 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._kv_need(mid - 1) <= self.cfg.kv_blocks:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _execute(self, j: int) -> None:
        """Run the first j steps of the plan; completions happen only at the plan's end."""
        dt0, ddt, k, prefill = self.plan
        start = self.clock
        elapsed = run_time(dt0, ddt, j)
        self.area += (len(self.running) + len(self.waiting)) * elapsed
        self.clock = start + elapsed
        self.steps += j
        for req in prefill:
            if req.state.generated == 0:
                req.first_token = start + dt0
        done = []
        for req in self.running:
            if req.state.generated < 2 <= req.state.generated + j:
                req.second_token = start + run_time(dt0, ddt, 2 - req.state.generated)
            req.state.generated += j
            if req.state.generated >= req.output_len:
                req.finish = self.clock
                done.append(req)
        for req in done:
            self.running.remove(req)
        self.decided = False
        self._publish()

    def _publish(self, added: SimRequest | None = None) -> None:
        """Exact predicted work at each decision; in between, the run's count-down (cheap)."""
        b, i = self.board, self.idx
        b.qlen[i] = len(self.running) + len(self.waiting) + len(self.inbox)
        b.max_seqs[i] = self.cfg.max_num_seqs
        if not self.decided:
            b.work0[i] = float(b.work_at_one(i, self.clock))
            b.soonest0[i] = max(b.soonest0[i] - b.steps_at_one(i, self.clock), 0.0)
            if added is not None:
                work = predicted_remaining(added.state, ROUTER_VIEW)
                b.hist0[i] += remaining_hist([work])
                b.work0[i] += work
                b.waiting_work[i] += work
                b.waiting_prefill[i] += added.prompt_len
            b.wake[i], b.decoding[i], b.k[i], b.t0[i] = self.clock, 0.0, 0, self.clock
            return
        dt0, ddt, k, _ = self.plan
        b.wake[i], b.decoding[i], b.k[i] = self.plan_end, len(self.running), k
        b.t0[i], b.dt0[i], b.ddt[i] = self.clock, max(dt0, 1e-12), ddt
        run_left = [predicted_remaining(r.state, ROUTER_VIEW) for r in self.running]
        wait_left = [predicted_remaining(r.state, ROUTER_VIEW) for r in self.waiting]
        b.work0[i] = sum(run_left + wait_left)
        b.hist0[i] = remaining_hist(run_left + wait_left)
        b.waiting_work[i] = sum(wait_left)
        b.waiting_prefill[i] = sum(r.prompt_len + r.state.generated for r in self.waiting)
        b.soonest0[i] = min(run_left, default=0.0)
        b.kv_free_tokens[i] = (self.cfg.kv_blocks - self._kv_need()) * self.cfg.block_size
