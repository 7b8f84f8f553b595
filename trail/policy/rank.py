"""Ranking, limited preemption and aging: the single home of TRAIL's scheduling logic."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trail.policy.cost import DEFAULT_STEP_COST, StepCost
from trail.policy.spec import PolicyConfig, PredictionSource
from trail.policy.state import LengthState


def predicted_remaining(s: LengthState, cfg: PolicyConfig) -> float:
    """Predicted remaining output tokens, capped by what max_tokens still allows."""
    src = cfg.source
    if src is PredictionSource.NONE:
        value = 0.0
    elif src is PredictionSource.PROMPT:
        value = s.initial_pred
    elif src is PredictionSource.PROMPT_COUNTDOWN:
        value = s.initial_pred - s.generated
    elif src is PredictionSource.ORACLE:
        value = float((s.true_total if s.true_total is not None else s.initial_pred) - s.generated)
    elif s.refined_pred is None:
        value = s.initial_pred - s.generated
    else:
        value = s.refined_pred - (s.generated - s.refined_at)
    if s.max_tokens is not None:
        value = min(value, s.max_tokens - s.generated)
    return max(value, 0.0)


def initial_prediction(s: LengthState, cfg: PolicyConfig) -> float:
    """The prediction made at arrival, capped by max_tokens; under the oracle (TRAIL+) the
    true length."""
    if cfg.source is PredictionSource.ORACLE and s.true_total is not None:
        return float(s.true_total)
    return s.initial_pred if s.max_tokens is None else min(s.initial_pred, s.max_tokens)


def waited(s: LengthState, now: float) -> float:
    """Time spent waiting, earlier waits (before a preemption) included."""
    current = 0.0 if s.waiting_since is None else max(now - s.waiting_since, 0.0)
    return s.waited_s + current


def is_starving(s: LengthState, now: float, cfg: PolicyConfig) -> bool:
    return s.promoted or waited(s, now) > cfg.starvation_s


def promote_starving(
    waiting: Iterable[LengthState], now: float, cfg: PolicyConfig
) -> list[LengthState]:
    """Mark requests that waited past `starvation_s`; returns the newly promoted ones. A promoted
    request stays promoted: it is never a preemption victim again, which bounds its wait by
    starvation_s plus the time until a slot or a victim frees up."""
    newly = [s for s in waiting if not s.promoted and waited(s, now) > cfg.starvation_s]
    for s in newly:
        s.promoted = True
    return newly


def effective_rank(s: LengthState, now: float, cfg: PolicyConfig) -> float:
    """Predicted remaining, lowered by aging once the request has waited `aging_after_s`
    (smaller runs first): a grace period leaves the order of ordinary waits to the
    predictions, and only the tail is pulled forward."""
    overdue = max(waited(s, now) - cfg.aging_after_s, 0.0)
    return predicted_remaining(s, cfg) - cfg.aging_tokens_per_s * overdue


def sort_key(s: LengthState, now: float, cfg: PolicyConfig) -> tuple[int, float, float]:
    """Waiting-queue order: starving first (FCFS among them), then by rank, then arrival."""
    if is_starving(s, now, cfg):
        return (0, s.arrival, s.arrival)
    if not cfg.orders_by_prediction:
        return (1, s.arrival, s.arrival)
    rank = effective_rank(s, now, cfg)
    if cfg.rank_bucket_tokens > 0:
        rank = math.floor(rank / cfg.rank_bucket_tokens)
    return (1, rank, s.arrival)


def order_waiting(
    waiting: Iterable[LengthState], now: float, cfg: PolicyConfig
) -> list[LengthState]:
    return sorted(waiting, key=lambda s: sort_key(s, now, cfg))


def is_preemptible(s: LengthState, cfg: PolicyConfig) -> bool:
    """Limited preemption: only young requests (generated <= c x min(initial prediction,
    max_tokens)) past their prefill, never promoted ones, a bounded number of times."""
    return (
        cfg.preemptive
        and cfg.c > 0  # c = 0 turns preemption off, even at age 0
        and not s.promoted
        and not s.in_prefill  # preempting mid-prefill wastes the prefill done so far
        and s.preemptions < cfg.max_preemptions
        and s.generated <= cfg.c * initial_prediction(s, cfg)
    )


@dataclass(frozen=True)
class Capacity:
    """Room the engine has this step: free batch slots and free KV blocks."""

    free_slots: int
    free_blocks: float = math.inf


@dataclass(frozen=True)
class Preemption:
    victim: LengthState
    beneficiary: LengthState
    reason: str  # "policy" (shorter predicted remaining) or "starvation"


def swap_gain(w: LengthState, v: LengthState, cfg: PolicyConfig) -> float:
    """Tokens of one request saved by running w before v (SRPT's exchange argument). Aging is
    left out: it orders the queue, but an aged request buying a preemption makes its victim
    age in turn and buy one back (churn); the starvation bound is what may preempt for age."""
    return predicted_remaining(v, cfg) - predicted_remaining(w, cfg) - cfg.margin_tokens


def worth_swapping(
    w: LengthState, v: LengthState, now: float, cfg: PolicyConfig, cost: StepCost, running: int
) -> bool:
    """A starving request always may; otherwise the gain must exceed the victim's recompute."""
    if is_starving(w, now, cfg):
        return True
    return swap_gain(w, v, cfg) > cost.recompute_steps(v.recompute_tokens, running)


def plan_preemptions(
    running: Sequence[LengthState],
    waiting_sorted: Sequence[LengthState],
    capacity: Capacity,
    now: float,
    cfg: PolicyConfig,
    cost: StepCost = DEFAULT_STEP_COST,
) -> list[Preemption]:
    """Victims to preempt so that better waiting requests are admitted this step.

    Waiting requests are taken best first. One that fits (a slot and its KV blocks) takes the
    room; one that does not takes victims (preemptible, largest predicted remaining first, each
    worth its recompute) until it fits. If it cannot fit even so, nobody is preempted for it and
    planning stops there: a victim is never evicted unless its beneficiary is admitted.
    """
    if not cfg.preemptive:
        return []
    candidates = sorted(
        (r for r in running if is_preemptible(r, cfg)), key=lambda r: -predicted_remaining(r, cfg)
    )
    slots, blocks = capacity.free_slots, capacity.free_blocks
    planned: list[Preemption] = []
    for w in waiting_sorted:
        taken: list[LengthState] = []
        while (slots < 1 or blocks < w.admit_blocks) and candidates:
            v = candidates[0]
            if not worth_swapping(w, v, now, cfg, cost, len(running)):
                break
            taken.append(candidates.pop(0))
            slots, blocks = slots + 1, blocks + v.kv_blocks
        if slots < 1 or blocks < w.admit_blocks:
            break  # w stays out even with the victims it could take: preempt nobody for it
        reason = "starvation" if is_starving(w, now, cfg) else "policy"
        planned += [Preemption(v, w, reason) for v in taken]
        slots, blocks = slots - 1, blocks - w.admit_blocks
    return planned


def kv_pressure_victim(running: Sequence[LengthState], cfg: PolicyConfig) -> LengthState | None:
    """Who gives up its KV blocks when memory runs out: preemptible ones first, largest
    predicted remaining first; FCFS (no prediction) keeps vLLM's choice, the latest arrival."""
    if not running:
        return None
    if not cfg.orders_by_prediction:
        return max(running, key=lambda r: r.arrival)
    return max(
        running,
        key=lambda r: (is_preemptible(r, cfg), predicted_remaining(r, cfg), r.arrival),
    )
