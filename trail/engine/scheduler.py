"""TrailScheduler: vLLM's scheduler with TRAIL ranking, refinement and limited preemption.

Selected with scheduler_cls="trail.engine.scheduler.TrailScheduler" and
scheduling_policy="priority" (whose KV-pressure victim is max(running, key=(priority,
arrival)) — we set `priority` each step so that victim is the policy's). All decisions come
from trail.policy; this class only translates vLLM requests to LengthState and back.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import RequestStatus

from trail.engine.observers import SchedulerObserver
from trail.engine.queue import RankedRequestQueue
from trail.engine.settings import TrailConfig
from trail.engine.stats import EngineLoad, LoadPublisher
from trail.engine.tracking import Tracked, initial_from_request
from trail.policy import (
    PredictionSource,
    is_preemptible,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    sort_key,
)
from trail.policy.rank import is_starving
from trail.predict.refine import BayesRefiner

PREEMPTIBLE_BONUS = 1e12  # KV victims: any preemptible request before any protected one


class TrailScheduler(Scheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trail = TrailConfig.from_hf_config(self.vllm_config.model_config.hf_config)
        self.policy_cfg = self.trail.policy_config()
        # routing needs a work estimate under FCFS too: the count-down of the initial prediction
        self.work_cfg = (
            self.policy_cfg
            if self.policy_cfg.orders_by_prediction
            else self.policy_cfg.with_(source=PredictionSource.PROMPT_COUNTDOWN)
        )
        self.bins = self.trail.resolved_bins()
        self.refiner = BayesRefiner(self.bins)
        self.tracked: dict[str, Tracked] = {}
        self.preemptions: Counter[str] = Counter()
        self.observer = SchedulerObserver(self.trail)
        self.load_publisher = LoadPublisher(self.trail.load_path)
        self.waiting = RankedRequestQueue()

    # ---- arrivals and departures -------------------------------------------------------
    def add_request(self, request: Any) -> None:
        if request.request_id not in self.tracked:
            t = initial_from_request(
                request, self.bins, self.trail.default_prediction, time.monotonic()
            )
            self.tracked[request.request_id] = t
            self.observer.arrival(t, request)
        super().add_request(request)

    def _free_request(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        t = self.tracked.pop(request.request_id, None)
        if t is not None:
            reason = finish_reason_name(request.get_finished_reason())
            self.observer.finished(t, request.num_output_tokens, reason)
        return super()._free_request(request, *args, **kwargs)

    def shutdown(self) -> None:
        self.observer.close()
        super().shutdown()

    # ---- one scheduling step --------------------------------------------------------------
    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        self._sync(now)
        self._preempt_by_policy(now)
        self._set_kv_victim_order()
        self._order_waiting(now)
        out = super().schedule(*args, **kwargs)
        for req in self.running:
            self._state(req).leave_waiting()
        idle = not self.running and not self.waiting
        self.load_publisher.maybe_publish(self.current_load, self.observer.load, idle=idle)
        return out

    def _state(self, request: Any) -> Any:
        return self.tracked[request.request_id].length

    def _sync(self, now: float) -> None:
        """Copy progress from vLLM's requests; note KV-pressure preemptions vLLM made."""
        for rid, t in self.tracked.items():
            req = self.requests.get(rid)
            if req is None:
                continue
            s = t.length
            if s.generated == 0 and req.num_output_tokens > 0:
                self.observer.first_token(t)
            s.generated = req.num_output_tokens
            if req.num_preemptions > s.preemptions:
                self.preemptions["kv_pressure"] += req.num_preemptions - s.preemptions
                self.observer.preempted(t, "kv_pressure")
            s.preemptions = req.num_preemptions
            if req.status != RequestStatus.RUNNING and s.waiting_since is None:
                s.enter_waiting(now)

    def _preempt_by_policy(self, now: float) -> None:
        cfg = self.policy_cfg
        if not cfg.preemptive or not self.waiting:
            return
        running = [r for r in self.running if r.status == RequestStatus.RUNNING]
        free = self.max_num_running_reqs - len(self.running)
        waiting = order_waiting([self._state(r) for r in self.waiting], now, cfg)
        victims = plan_preemptions([self._state(r) for r in running], waiting, free, now, cfg)
        for v in victims:
            req = self.requests[v.request_id]
            self.running.remove(req)
            self._preempt_request(req, now)
            v.preemptions = req.num_preemptions
            v.enter_waiting(now)
            self.preemptions["policy"] += 1
            self.observer.preempted(self.tracked[v.request_id], "policy")

    def _set_kv_victim_order(self) -> None:
        cfg = self.policy_cfg
        for req in self.running:
            s = self._state(req)
            if cfg.orders_by_prediction:
                bonus = PREEMPTIBLE_BONUS if is_preemptible(s, cfg) else 0.0
                req.priority = bonus + predicted_remaining(s, cfg)
            else:
                req.priority = 0  # ties -> latest arrival, vLLM's FCFS choice

    def _order_waiting(self, now: float) -> None:
        cfg = self.policy_cfg
        for req in self.waiting:
            t = self.tracked[req.request_id]
            if not t.promoted and is_starving(t.length, now, cfg):
                t.promoted = True
                self.observer.starvation_promoted(t)
        self.waiting.reorder(lambda r: sort_key(self._state(r), now, cfg))

    def current_load(self) -> EngineLoad:
        total = sum(predicted_remaining(t.length, self.work_cfg) for t in self.tracked.values())
        pending = sum(
            max(r.num_prompt_tokens - r.num_computed_tokens, 0)
            for r in self.requests.values()
            if not r.is_finished()
        )
        pool = self.kv_cache_manager.block_pool
        return EngineLoad(
            total,
            pending,
            len(self.running),
            len(self.waiting),
            time.time(),
            kv_free_blocks=pool.get_num_free_blocks(),
            kv_total_blocks=pool.num_gpu_blocks - 1,  # minus vLLM's null block
        )

    # ---- probe outputs ------------------------------------------------------------------
    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        emissions = getattr(model_runner_output, "trail_probe", None) or {}
        for rid, em in emissions.items():
            t = self.tracked.get(rid)
            if t is not None:
                self._refine(t, em)
        probe_s = getattr(model_runner_output, "trail_probe_seconds", None)
        if probe_s:
            self.observer.probe_seconds(probe_s)
        return super().update_from_output(scheduler_output, model_runner_output)

    def _refine(self, t: Tracked, em: Any) -> None:
        posterior = None
        if em.probs is not None:
            steps = em.generated - t.posterior_at
            t.posterior = self.refiner.update(t.posterior, steps, em.probs)
            t.posterior_at = em.generated
            expected = self.refiner.expected(t.posterior)
            t.length.refine(expected)
            t.length.refined_at = em.generated
            t.trajectory.append((em.generated, expected))
            posterior = t.posterior.tolist()
        self.observer.emission(t, em, posterior)


def finish_reason_name(reason: Any) -> str:
    """vLLM's FinishReason is an IntEnum whose STOP is 0: test for None, never truthiness."""
    return "abort" if reason is None else str(reason)
