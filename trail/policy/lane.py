"""Prefill-to-rank: the ranking lane, shared by the vLLM scheduler and the simulator.

Why: in a burst the order of the waiting queue is most of what a scheduler decides, and a
prompt-text encoder ranks it poorly (Kendall tau 0.13-0.27), while the probe on the serving
model's own state at the last prompt token ranks it 1.3-2.4 x better. That state exists only
after a prefill. So arrivals are prefilled in a small lane beside the full decode batch; the
end-of-prefill probe output (refined with the prompt prior) becomes their rank; unless they win
a decode slot at once they are *parked*: preempted with their KV left in the prefix cache
(evictable, so memory pressure takes parked blocks before any running request's), and resumed
by rank when a decode slot frees, recomputing only the partial last block.

Bounds, each a PolicyConfig setting: `rank_lane_seqs` sequences prefilling in the lane at once
(beyond the decode slots), `rank_lane_tokens` prompt tokens admitted to it per step (one prompt
always fits), `rank_lane_max_parked` requests parked at once (the KV they may hold).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trail.policy.rank import is_starving
from trail.policy.spec import PolicyConfig
from trail.policy.state import LengthState


def is_ranked(s: LengthState) -> bool:
    """The serving model has ranked it: a probe output (end of prefill or later) is in — or it
    has been prefilled and has a token, so a second lane trip could tell nothing more (a
    request whose probe output never came must not cycle through the lane)."""
    return s.refined_pred is not None or s.generated >= 1


def has_landed(s: LengthState) -> bool:
    """A lane request whose prefill is done and whose first probe output (or, without one, its
    first token) is in: a lane seat is never held forever."""
    return s.in_lane and not s.in_prefill and is_ranked(s)


@dataclass
class LanePlan:
    """One step's lane decisions. `to_decode` and `to_lane` are waiting requests to admit (in
    this order); `park` are landed lane requests that go back to wait, KV cached."""

    park: list[LengthState] = field(default_factory=list)
    landed: list[LengthState] = field(default_factory=list)  # leave the lane (decode or park)
    to_decode: list[LengthState] = field(default_factory=list)
    to_lane: list[LengthState] = field(default_factory=list)
    # ranked waiting requests admitted nowhere this step: who may still preempt a decoder
    contenders: list[LengthState] = field(default_factory=list)

    @property
    def admit(self) -> list[LengthState]:
        return self.to_decode + self.to_lane


def plan_lane(
    running: Sequence[LengthState],
    waiting_sorted: Sequence[LengthState],
    decode_slots: int,
    now: float,
    cfg: PolicyConfig,
    key: Callable[[LengthState], Any],
) -> LanePlan:
    """Who decodes, who parks and who prefills to be ranked, this step.

    Free decode slots go, best `key` first, to ranked contenders: landed lane requests, parked
    (or preempted) requests and starving ones; an unranked arrival takes a decode slot directly
    only when no ranked contender is left (light load: no lane detour). Landed requests that
    win no slot are parked. Then the lane takes unranked arrivals in queue order, within its
    seats, its token budget and the parked bound.
    """
    lane = [s for s in running if s.in_lane]
    landed = [s for s in lane if has_landed(s)]
    decoding = len(running) - len(lane)
    free = max(decode_slots - decoding, 0)
    waiting_ranked: list[LengthState] = []
    fresh: list[LengthState] = []
    for w in waiting_sorted:
        (waiting_ranked if is_ranked(w) or is_starving(w, now, cfg) else fresh).append(w)
    contenders = sorted([*landed, *waiting_ranked], key=key)
    winners = contenders[:free]
    plan = LanePlan(
        landed=landed,
        park=[s for s in landed if not any(s is w for w in winners)],
        to_decode=[w for w in winners if not w.in_lane],
    )
    free -= len(winners)
    if free > 0:
        plan.to_decode += fresh[:free]
        fresh = fresh[free:]
    parked = len(waiting_ranked) - len(plan.to_decode) + len(plan.park)
    seats = cfg.rank_lane_seqs - (len(lane) - len(landed))
    budget = cfg.rank_lane_tokens
    for w in fresh:
        if seats <= 0 or parked >= cfg.rank_lane_max_parked:
            break
        if plan.to_lane and w.prompt_tokens > budget:
            break
        plan.to_lane.append(w)
        seats, parked, budget = seats - 1, parked + 1, budget - w.prompt_tokens
    chosen = {id(s) for s in plan.admit}
    plan.contenders = [w for w in waiting_sorted if is_ranked(w) and id(w) not in chosen]
    return plan
