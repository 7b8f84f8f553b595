"""The ranking lane in the simulated engine: park, preempt, then admit, as the vLLM scheduler
does with the same `plan_lane` (trail/policy/lane.py)."""

from __future__ import annotations

from typing import Any

from trail.lab.sim.workload import SimRequest
from trail.policy import Capacity, LengthState, plan_preemptions, sort_key
from trail.policy.lane import plan_lane


def park(eng: Any, req: SimRequest) -> None:
    """A landed lane request goes back to wait by its new rank, its full blocks cached."""
    eng.running.remove(req)
    eng._report_resources(req)
    req.cached_tokens = req.prompt_len + req.state.generated - req.state.recompute_tokens
    req.state.parks += 1
    req.state.enter_waiting(eng.clock)
    eng.waiting.append(req)
    eng.parks += 1


def by_state(reqs: list[SimRequest], states: list[LengthState]) -> list[SimRequest]:
    """The requests whose states are `states`, in that order (states are not hashable)."""
    ids = {id(s) for s in states}
    order = {id(s): i for i, s in enumerate(states)}
    return sorted((r for r in reqs if id(r.state) in ids), key=lambda r: order[id(r.state)])


def admit_with_lane(eng: Any) -> list[SimRequest]:
    """The ranking lane (trail/policy/lane.py): park, preempt, then admit, as the engine."""
    cfg, now = eng.policy, eng.clock
    ranked = sorted(eng.waiting, key=lambda r: sort_key(r.state, now, cfg))
    for req in eng.running + ranked:
        eng._report_resources(req)
    plan = plan_lane(
        [r.state for r in eng.running],
        [r.state for r in ranked],
        eng.cfg.max_num_seqs,
        now,
        cfg,
        key=lambda s: sort_key(s, now, cfg),
    )
    for s in plan.landed:
        s.in_lane = False
    for req in by_state(eng.running, plan.park):
        park(eng, req)
    admit = plan.to_decode
    if cfg.preemptive:
        room = Capacity(0, eng.cfg.kv_blocks - eng._kv_need())
        running = [r.state for r in eng.running if not r.state.in_lane]
        for p in plan_preemptions(running, plan.contenders, room, now, cfg, eng.cfg.cost):
            eng._preempt(next(r for r in eng.running if r.state is p.victim))
            if not any(p.beneficiary is a for a in admit):
                admit = [*admit, p.beneficiary]
    lane_ids = {id(s) for s in plan.to_lane}
    admitted = eng._take(by_state(eng.waiting, admit + plan.to_lane), limit=None)
    for req in admitted:
        req.state.in_lane = id(req.state) in lane_ids
    return admitted
