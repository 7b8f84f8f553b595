"""Small, label-binding helpers so the scheduler and router record metrics in one call.

Binding a replica's label children once keeps the per-step cost to a dict-free mmap write, and
folding unknown enum values into ``other`` keeps label cardinality bounded whatever callers pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from trail.metrics import definitions as d


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "other"


class ReplicaMetrics:
    """Metrics of one replica's TRAIL scheduler (lives in the EngineCore process)."""

    def __init__(self, replica: str, policy: str | None = None) -> None:
        self.replica = replica
        self._remaining = d.PREDICTED_REMAINING_TOKENS.labels(replica=replica)
        self._running = d.QUEUE_REQUESTS.labels(replica=replica, state="running")
        self._waiting = d.QUEUE_REQUESTS.labels(replica=replica, state="waiting")
        self._probe_calls = d.PROBE_CALLS.labels(replica=replica)
        self._probe_seconds = d.PROBE_SECONDS.labels(replica=replica)
        self._aged = d.AGED_REQUESTS.labels(replica=replica)
        self._promoted = d.STARVATION_PROMOTIONS.labels(replica=replica)
        if policy is not None:
            d.POLICY_INFO.labels(replica=replica, policy=policy).set(1)
        for reason in d.PREEMPTION_REASONS:  # zero-valued series, so rate() sees the first one
            d.PREEMPTIONS.labels(replica=replica, reason=reason)
            d.RECOMPUTED_TOKENS.labels(replica=replica, reason=reason)
        for phase in d.ERROR_PHASES:
            d.PREDICTION_ABS_ERROR_TOKENS.labels(replica=replica, phase=phase)

    def set_queues(self, *, running: int, waiting: int) -> None:
        self._running.set(running)
        self._waiting.set(waiting)

    def set_predicted_remaining(self, tokens: float) -> None:
        self._remaining.set(tokens)

    def preempted(self, reason: str, recompute_tokens: int = 0) -> None:
        reason = _bounded(reason, d.PREEMPTION_REASONS)
        d.PREEMPTIONS.labels(replica=self.replica, reason=reason).inc()
        d.RECOMPUTED_TOKENS.labels(replica=self.replica, reason=reason).inc(recompute_tokens)

    def probe_call(self, seconds: float) -> None:
        self._probe_calls.inc()
        self._probe_seconds.observe(seconds)

    def aged(self, n: int = 1) -> None:
        self._aged.inc(n)

    def starvation_promoted(self, n: int = 1) -> None:
        self._promoted.inc(n)

    def prediction_error(self, phase: str, predicted: float, actual: float) -> None:
        phase = _bounded(phase, d.ERROR_PHASES)
        d.PREDICTION_ABS_ERROR_TOKENS.labels(replica=self.replica, phase=phase).observe(
            abs(predicted - actual)
        )

    def request_finished(
        self,
        *,
        true_length: int,
        finish_reason: str,
        initial_expected: float | None,
        trajectory: Iterable[tuple[int, float]] = (),
    ) -> None:
        """Observe a finished request's errors: initial vs total, each (step, remaining) point."""
        d.REQUESTS_FINISHED.labels(
            replica=self.replica, finish_reason=_bounded(finish_reason, d.FINISH_REASONS)
        ).inc()
        if initial_expected is not None:
            self.prediction_error("initial", initial_expected, true_length)
        for step, expected_remaining in trajectory:
            self.prediction_error("refined", expected_remaining, true_length - step)


def router_decision(router: str, replica: str) -> None:
    """Count one routing decision (called by the Serve request router)."""
    d.ROUTER_DECISIONS.labels(router=router, replica=replica).inc()


def router_view(router: str, replica: str, work_tokens: float) -> None:
    """Record the router's current estimate of a replica's predicted remaining work."""
    d.ROUTER_REPLICA_WORK_TOKENS.labels(router=router, replica=replica).set(work_tokens)
