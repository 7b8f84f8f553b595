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

from trail.engine.events import EventLog
from trail.engine.queue import RankedRequestQueue
from trail.engine.settings import TrailConfig
from trail.engine.tracking import Tracked, initial_from_request
from trail.policy import (
    is_preemptible,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    sort_key,
)
from trail.predict.refine import BayesRefiner

PREEMPTIBLE_BONUS = 1e12  # KV victims: any preemptible request before any protected one


class TrailScheduler(Scheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trail = TrailConfig.from_hf_config(self.vllm_config.model_config.hf_config)
        self.policy_cfg = self.trail.policy_config()
        self.bins = self.trail.resolved_bins()
        self.refiner = BayesRefiner(self.bins)
        self.tracked: dict[str, Tracked] = {}
        self.preemptions: Counter[str] = Counter()
        self.events = EventLog(self.trail.dump_path)
        self.waiting = RankedRequestQueue()

    # ---- arrivals and departures -------------------------------------------------------
    def add_request(self, request: Any) -> None:
        if request.request_id not in self.tracked:
            t = initial_from_request(
                request, self.bins, self.trail.default_prediction, time.monotonic()
            )
            self.tracked[request.request_id] = t
            self.events.arrival(t)
        super().add_request(request)

    def _free_request(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        t = self.tracked.pop(request.request_id, None)
        if t is not None:
            self.events.finished(t, request.num_output_tokens)
        return super()._free_request(request, *args, **kwargs)

    # ---- one scheduling step --------------------------------------------------------------
    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        self._sync(now)
        self._preempt_by_policy(now)
        self._set_kv_victim_order()
        cfg = self.policy_cfg
        self.waiting.reorder(lambda r: sort_key(self._state(r), now, cfg))
        out = super().schedule(*args, **kwargs)
        for req in self.running:
            self._state(req).leave_waiting()
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
            s.generated = req.num_output_tokens
            if req.num_preemptions > s.preemptions:
                self.preemptions["kv_pressure"] += req.num_preemptions - s.preemptions
                self.events.preempted(t, "kv_pressure")
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
            self.events.preempted(self.tracked[v.request_id], "policy")

    def _set_kv_victim_order(self) -> None:
        cfg = self.policy_cfg
        for req in self.running:
            s = self._state(req)
            if cfg.orders_by_prediction:
                bonus = PREEMPTIBLE_BONUS if is_preemptible(s, cfg) else 0.0
                req.priority = bonus + predicted_remaining(s, cfg)
            else:
                req.priority = 0  # ties -> latest arrival, vLLM's FCFS choice

    # ---- probe outputs ------------------------------------------------------------------
    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        emissions = getattr(model_runner_output, "trail_probe", None) or {}
        for rid, em in emissions.items():
            t = self.tracked.get(rid)
            if t is not None:
                self._refine(t, em)
        return super().update_from_output(scheduler_output, model_runner_output)

    def _refine(self, t: Tracked, em: Any) -> None:
        if em.probs is not None:
            steps = em.generated - t.posterior_at
            t.posterior = self.refiner.update(t.posterior, steps, em.probs)
            t.posterior_at = em.generated
            expected = self.refiner.expected(t.posterior)
            t.length.refined_pred = expected
            t.length.refined_at = em.generated
            t.trajectory.append((em.generated, expected))
        self.events.emission(t, em)
