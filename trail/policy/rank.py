"""Ranking, limited preemption and aging: the single home of TRAIL's scheduling logic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    """The prediction made at arrival; under the oracle (TRAIL+) it is the true length."""
    if cfg.source is PredictionSource.ORACLE and s.true_total is not None:
        return float(s.true_total)
    return s.initial_pred


def waited(s: LengthState, now: float) -> float:
    return 0.0 if s.waiting_since is None else max(now - s.waiting_since, 0.0)


def is_starving(s: LengthState, now: float, cfg: PolicyConfig) -> bool:
    return waited(s, now) > cfg.starvation_s


def effective_rank(s: LengthState, now: float, cfg: PolicyConfig) -> float:
    """Predicted remaining, lowered by aging while the request waits (smaller runs first)."""
    return predicted_remaining(s, cfg) - cfg.aging_tokens_per_s * waited(s, now)


def sort_key(s: LengthState, now: float, cfg: PolicyConfig) -> tuple[int, float, float]:
    """Waiting-queue order: starving first (FCFS among them), then by rank, then arrival."""
    if is_starving(s, now, cfg):
        return (0, s.waiting_since or s.arrival, s.arrival)
    if not cfg.orders_by_prediction:
        return (1, s.arrival, s.arrival)
    return (1, effective_rank(s, now, cfg), s.arrival)


def order_waiting(
    waiting: Iterable[LengthState], now: float, cfg: PolicyConfig
) -> list[LengthState]:
    return sorted(waiting, key=lambda s: sort_key(s, now, cfg))


def is_preemptible(s: LengthState, cfg: PolicyConfig) -> bool:
    """Limited preemption: only young requests (age <= c x initial prediction), a bounded number of times."""
    return (
        cfg.preemptive
        and cfg.c > 0  # c = 0 turns preemption off, even at age 0
        and s.preemptions < cfg.max_preemptions
        and s.generated <= cfg.c * initial_prediction(s, cfg)
    )


def plan_preemptions(
    running: Sequence[LengthState],
    waiting_sorted: Sequence[LengthState],
    free_slots: int,
    now: float,
    cfg: PolicyConfig,
) -> list[LengthState]:
    """Victims to preempt so better waiting requests can run when the batch is full.

    The waiting requests that do not fit in `free_slots` are matched, best first, against the
    preemptible running requests with the largest predicted remaining; a pair swaps only if the
    waiting one is shorter by more than the margin (or is starving).
    """
    if not cfg.preemptive:
        return []
    candidates = sorted(
        (r for r in running if is_preemptible(r, cfg)),
        key=lambda r: -predicted_remaining(r, cfg),
    )
    victims: list[LengthState] = []
    for w in waiting_sorted[max(free_slots, 0) :]:
        if not candidates:
            break
        v = candidates[0]
        better = effective_rank(w, now, cfg) + cfg.margin_tokens < predicted_remaining(v, cfg)
        if not (better or is_starving(w, now, cfg)):
            break
        victims.append(candidates.pop(0))
    return victims


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
