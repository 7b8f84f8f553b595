"""TrailScheduler: vLLM's scheduler with TRAIL ranking, refinement and limited preemption.

Selected with scheduler_cls="trail.engine.scheduler.TrailScheduler" (or TrailAsyncScheduler
where vLLM runs async scheduling, i.e. on GPUs) and scheduling_policy="priority" (whose
KV-pressure victim is max(running, key=(priority, arrival)) — we set it each step so that
victim is the policy's). All decisions come from trail.policy; this mixin only translates vLLM
requests to LengthState and back. The vLLM internals it touches are all in
trail/engine/scheduler_hooks.py (SchedulerHooks), which also holds the start-up refusals
(check_engine_supported).

Each step's device time feeds the step-cost model (trail/engine/step_timing.py, which also
explains the two steps in flight under async scheduling).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import RequestStatus

from trail.engine.load import EngineLoad, LoadPublisher
from trail.engine.observers import SchedulerObserver
from trail.engine.overrides import require_trail_config
from trail.engine.queue import RankedRequestQueue
from trail.engine.report import Reports, note_admission
from trail.engine.scheduler_hooks import SchedulerHooks, check_engine_supported
from trail.engine.step_timing import StepTimer
from trail.engine.tracking import Tracked, initial_from_request
from trail.engine.vllm_hooks import probe_output
from trail.policy import (
    DEFAULT_STEP_COST,
    Capacity,
    PredictionSource,
    StepCost,
    StepCostEstimator,
    is_preemptible,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    promote_starving,
    sort_key,
)
from trail.policy.lane import LanePlan, plan_lane
from trail.policy.route import remaining_hist

PREEMPTIBLE_BONUS = 1e12  # KV victims: any preemptible request before any protected one


class TrailSchedulerMixin(SchedulerHooks):
    """Everything TRAIL adds; composed with vLLM's Scheduler or AsyncScheduler below."""

    def __init__(self, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        check_engine_supported(vllm_config, is_async=isinstance(self, AsyncScheduler))
        # next in the MRO: vLLM's Scheduler or AsyncScheduler (mypy sees object)
        super().__init__(vllm_config, *args, **kwargs)  # type: ignore[call-arg]
        self.trail = require_trail_config(self.vllm_config)
        self.policy_cfg = self.trail.policy_config()
        # routing needs a work estimate under FCFS too: the count-down of the initial prediction
        self.work_cfg = (
            self.policy_cfg
            if self.policy_cfg.orders_by_prediction
            else self.policy_cfg.with_(source=PredictionSource.PROMPT_COUNTDOWN)
        )
        self.bins = self.trail.resolved_bins()
        self.refiner = self.trail.refiner()
        self.tracked: dict[str, Tracked] = {}
        self.preemptions: Counter[str] = Counter()  # by reason; published in EngineLoad
        self.recomputed_tokens: Counter[str] = Counter()
        pinned = self.trail.step_cost
        self.step_cost = StepCostEstimator(StepCost(**pinned) if pinned else DEFAULT_STEP_COST)
        self._fit_step_cost = pinned is None
        self.timer = StepTimer()  # device seconds per step (trail/engine/step_timing.py)
        self.observer = SchedulerObserver(self.trail)
        self.load_publisher = LoadPublisher(self.trail.load_path)
        self.install_waiting_queue(RankedRequestQueue())
        self.decode_slots = self.max_num_running_reqs - self.policy_cfg.rank_lane_seqs
        if self.decode_slots < 1:
            raise ValueError(
                f"rank_lane_seqs={self.policy_cfg.rank_lane_seqs} leaves no decode slot of "
                f"max_num_seqs={self.max_num_running_reqs}"
            )
        self.parks = 0
        self.reports = Reports()  # opt-in summaries on finished outputs (trail_return)
        self.install_kv_accounting()

    # ---- arrivals and departures -------------------------------------------------------
    def add_request(self, request: Any) -> None:
        if request.request_id not in self.tracked:
            t = initial_from_request(
                request, self.bins, self.trail.default_prediction, time.monotonic()
            )
            t.length.prompt_tokens = request.num_prompt_tokens  # the lane's token budget
            self.tracked[request.request_id] = t
            self.observer.arrival(t, request)
        super().add_request(request)

    def on_request_freed(self, request: Any) -> None:
        t = self.tracked.pop(request.request_id, None)
        if t is not None:
            reason = finish_reason_name(request.get_finished_reason())
            self.observer.finished(t, request.num_output_tokens, reason)
            self.reports.freed(t, request)

    def shutdown(self) -> None:
        self.observer.close()
        super().shutdown()

    # ---- one scheduling step --------------------------------------------------------------
    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        self._sync(now)
        self._promote_starving(now)
        rank = lambda r: sort_key(self._state(r), now, self.policy_cfg)  # noqa: E731
        if self.policy_cfg.rank_lane_seqs > 0:
            self.waiting.reorder(rank)
            plan, admit = self._plan_lane(now)
            self._set_kv_victim_order()
            with self.waiting.holding_only(admit):
                out = super().schedule(*args, **kwargs)
            for s in plan.to_lane:
                req = self.requests.get(s.request_id)
                s.in_lane = req is not None and req.status == RequestStatus.RUNNING
        else:
            self._preempt_by_policy(now)
            self._set_kv_victim_order()
            self.waiting.reorder(rank)
            out = super().schedule(*args, **kwargs)
        self._note_admitted(now)
        self.timer.scheduled(out, context_tokens=sum(r.num_computed_tokens for r in self.running))
        idle = not self.running and not self.waiting
        self.load_publisher.maybe_publish(self.current_load, self.observer.load, idle=idle)
        return out

    def _note_admitted(self, now: float) -> None:
        """Requests vLLM just took from the waiting queue: their rank goes in the event log."""
        for req in self.running:
            s = self._state(req)
            if s.waiting_since is not None:
                t, rank = self.tracked[req.request_id], predicted_remaining(s, self.policy_cfg)
                self.observer.admitted(t, rank, s.in_lane)
                note_admission(t, self.work_cfg, s.in_lane)
            s.leave_waiting(now)

    def _state(self, request: Any) -> Any:
        return self.tracked[request.request_id].length

    def _observe_step(self, out: Any) -> None:
        """One step-cost sample, for the step `out` scheduled."""
        timed = self.timer.returned(out)
        if timed is None:
            return
        sample, secs = timed
        if self._fit_step_cost:
            self.step_cost.observe(sample.prefill_tokens, sample.decode_seqs, secs)
        self.observer.step(sample.prefill_tokens, sample.decode_seqs, sample.context_tokens, secs)

    def _sync(self, now: float) -> None:
        """Copy progress and resources from vLLM's requests; note vLLM's own KV preemptions.
        O(1) per request and KV-cache group: counters and token arithmetic, no block lists."""
        block = self.block_size
        caching = self.cache_config.enable_prefix_caching
        for rid, t in self.tracked.items():
            req = self.requests.get(rid)
            if req is None:
                continue
            self._sync_progress(t, req)
            s = t.length
            running = req.status == RequestStatus.RUNNING
            computed = req.num_computed_tokens
            s.in_prefill = running and computed < req.num_tokens - 1
            s.recompute_tokens = computed % block if caching else computed
            s.kv_blocks = self.kv_blocks_held(rid) if running else 0
            s.admit_blocks = self.kv_blocks_to_admit(req.num_tokens + 1)  # + the first decode
            if not running:
                s.enter_waiting(now)

    def _sync_progress(self, t: Tracked, req: Any) -> None:
        """Tokens delivered (under async scheduling: without the placeholders in flight) and
        preemptions vLLM made on its own (KV pressure)."""
        s = t.length
        if s.generated == 0 and req.num_output_tokens > 0:
            self.observer.first_token(t)
        s.generated = req.num_output_tokens
        if req.num_preemptions > s.preemptions + s.parks:
            self._count_preemption(t, "kv_pressure", s.recompute_tokens)
        s.preemptions = req.num_preemptions - s.parks

    def _promote_starving(self, now: float) -> None:
        states = [self._state(r) for r in self.waiting]
        for s in promote_starving(states, now, self.policy_cfg):
            self.observer.starvation_promoted(self.tracked[s.request_id])

    def _preempt_by_policy(
        self, now: float, waiting: list[Any] | None = None, room: Capacity | None = None
    ) -> list[Any]:
        """Limited preemption for the best of `waiting` (default: the whole queue), within
        `room` (default: free slots and KV); returns the beneficiaries' states."""
        cfg = self.policy_cfg
        candidates = [self._state(r) for r in self.waiting] if waiting is None else waiting
        if not cfg.preemptive or not candidates:
            return []
        running = [
            r
            for r in self.running
            if r.status == RequestStatus.RUNNING and not self._state(r).in_lane
        ]
        if room is None:
            room = Capacity(self.free_batch_slots(), self.kv_admission_room())
        plans = plan_preemptions(
            [self._state(r) for r in running],
            order_waiting(candidates, now, cfg),
            room,
            now,
            cfg,
            self.step_cost(),
        )
        for p in plans:
            req = self.requests[p.victim.request_id]
            self.preempt_running(req, now)
            p.victim.preemptions = req.num_preemptions - p.victim.parks
            p.victim.enter_waiting(now)
            self._count_preemption(
                self.tracked[req.request_id], p.reason, p.victim.recompute_tokens
            )
        beneficiaries = {id(p.beneficiary): p.beneficiary for p in plans}
        return list(beneficiaries.values())

    # ---- the ranking lane (trail/policy/lane.py) -----------------------------------------
    def _plan_lane(self, now: float) -> tuple[LanePlan, list[Any]]:
        """Park the landed requests that win no decode slot, preempt for ranked waiting ones
        where the policy says so, and return who may be admitted this step, in order."""
        cfg = self.policy_cfg
        running = [r for r in self.running if r.status == RequestStatus.RUNNING]
        waiting = [self._state(r) for r in self.waiting]  # already in rank order
        plan = plan_lane(
            [self._state(r) for r in running],
            waiting,
            self.decode_slots,
            now,
            cfg,
            key=lambda s: sort_key(s, now, cfg),
        )
        parked = {id(s) for s in plan.park}
        for s in plan.landed:
            s.in_lane = False
            if id(s) not in parked:  # keeps its slot: admitted to decode at this rank
                t = self.tracked[s.request_id]
                self.observer.admitted(t, predicted_remaining(s, cfg), lane=False)
                note_admission(t, self.work_cfg, lane=False)
        for s in plan.park:
            self._park(self.tracked[s.request_id], now)
        room = Capacity(0, self.kv_admission_room())
        extra = self._preempt_by_policy(now, plan.contenders, room)
        admit = [*plan.to_decode, *extra, *plan.to_lane]
        return plan, [self.requests[s.request_id] for s in admit]

    def _park(self, t: Tracked, now: float) -> None:
        """Back to wait with its rank; its full KV blocks stay in the prefix cache."""
        s = t.length
        self.preempt_running(self.requests[s.request_id], now)
        s.parks += 1
        s.enter_waiting(now)
        self.parks += 1
        self.observer.preempted(t, "park", s.recompute_tokens)

    def _count_preemption(self, t: Tracked, reason: str, recompute: int) -> None:
        self.preemptions[reason] += 1
        self.recomputed_tokens[reason] += recompute
        self.observer.preempted(t, reason, recompute)

    def _set_kv_victim_order(self) -> None:
        cfg = self.policy_cfg
        for req in self.running:
            s = self._state(req)
            if cfg.orders_by_prediction:
                bonus = PREEMPTIBLE_BONUS if is_preemptible(s, cfg) else 0.0
                self.set_kv_victim_rank(req, bonus + predicted_remaining(s, cfg))
            else:
                self.set_kv_victim_rank(req, 0)  # ties -> latest arrival, vLLM's FCFS choice

    def current_load(self) -> EngineLoad:
        left = {
            rid: predicted_remaining(t.length, self.work_cfg) for rid, t in self.tracked.items()
        }
        running = [left[r.request_id] for r in self.running if r.request_id in left]
        pending = sum(
            max(r.num_prompt_tokens - r.num_computed_tokens, 0)
            for r in self.requests.values()
            if not r.is_finished()
        )
        total = sum(left.values())
        return EngineLoad(
            total,
            pending,
            len(self.running),
            len(self.waiting),
            time.time(),
            kv_free_blocks=self.free_kv_blocks(),
            kv_total_blocks=self.total_kv_blocks(),
            preemptions=dict(self.preemptions),
            recomputed_tokens=dict(self.recomputed_tokens),
            prefill_weight=self.step_cost().prefill_weight,
            waiting_work=total - sum(running),
            soonest_free=min(running, default=0.0),
            remaining_hist=remaining_hist(list(left.values())).tolist(),
        )

    # ---- probe outputs ------------------------------------------------------------------
    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        self._observe_step(scheduler_output)
        emissions, probe_s = probe_output(model_runner_output)
        for rid, em in emissions.items():
            t = self.tracked.get(rid)
            if t is not None:
                self._refine(t, em)
        if probe_s:
            self.observer.probe_seconds(probe_s)
        outputs = super().update_from_output(scheduler_output, model_runner_output)
        return self.reports.attach(outputs)  # opt-in summaries (trail/engine/report.py)

    def _refine(self, t: Tracked, em: Any) -> None:
        """One probe output into the posterior; a step already counted (a request recomputed
        after a preemption emits its rows again) adds no evidence."""
        posterior = None
        if em.probs is not None and em.generated > t.evidence_at:
            steps = em.generated - t.posterior_at
            # before the first probe output the prior is the prompt's distribution, if the
            # evaluation chose to start from it (else the first probe output stands alone)
            first = t.evidence_at < 0
            use_prior = not first or self.trail.refine_settings().prompt_prior
            prior = t.posterior if use_prior else None
            t.posterior = self.refiner.update(prior, steps, em.probs, first=first)
            t.posterior_at = t.evidence_at = em.generated
            expected = self.refiner.expected(t.posterior)
            t.length.refine(expected, at=em.generated)
            t.trajectory.append((em.generated, expected))
            t.probe_version = em.version
            posterior = t.posterior.tolist()
        self.observer.emission(t, em, posterior)


class TrailScheduler(TrailSchedulerMixin, Scheduler):
    """Synchronous scheduling (vLLM on CPU always runs this way)."""


class TrailAsyncScheduler(TrailSchedulerMixin, AsyncScheduler):
    """vLLM's async scheduling (the GPU default; a plain Scheduler under it degrades)."""


def finish_reason_name(reason: Any) -> str:
    """vLLM's FinishReason is an IntEnum whose STOP is 0: test for None, never truthiness."""
    return "abort" if reason is None else str(reason)
