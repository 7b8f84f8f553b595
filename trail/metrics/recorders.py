"""Small, label-binding helpers so the scheduler and router record metrics in one call.

Binding a replica's label children once keeps the per-step cost to a dict-free mmap write, and
folding unknown enum values into ``other`` keeps label cardinality bounded whatever callers pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from trail.metrics import definitions as d


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "other"


class ReplicaMetrics:
    """Metrics of one replica's TRAIL scheduler (lives in the EngineCore process)."""

    def __init__(
        self, replica: str, policy: str | None = None, probe_version: str | None = None
    ) -> None:
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
        d.PREDICTION_ABS_ERROR_TOKENS.labels(replica=replica, phase="initial", predictor="prompt")
        for outcome in d.CAPTURE_OUTCOMES:
            d.CAPTURE_ROWS.labels(replica=replica, outcome=outcome)
        if probe_version is not None:  # NaN until enough requests have finished: not yet known
            d.ONLINE_KENDALL_TAU.labels(replica=replica, predictor=probe_version).set(float("nan"))
        self._first: dict[str, deque[tuple[float, float]]] = {}  # version -> (pred, true)

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

    def prediction_error(
        self, phase: str, predicted: float, actual: float, predictor: str = "prompt"
    ) -> None:
        phase = _bounded(phase, d.ERROR_PHASES)
        d.PREDICTION_ABS_ERROR_TOKENS.labels(
            replica=self.replica, phase=phase, predictor=predictor
        ).observe(abs(predicted - actual))

    def request_finished(
        self,
        *,
        true_length: int,
        finish_reason: str,
        initial_expected: float | None,
        trajectory: Sequence[tuple[int, float]] = (),
        probe_version: str | None = None,
        prompt_version: str | None = None,
    ) -> None:
        """Observe a finished request's errors: initial vs total, each (step, remaining) point
        (labelled by the probe version), and the version's online Kendall tau."""
        d.REQUESTS_FINISHED.labels(
            replica=self.replica, finish_reason=_bounded(finish_reason, d.FINISH_REASONS)
        ).inc()
        if initial_expected is not None:
            self.prediction_error(
                "initial", initial_expected, true_length, prompt_version or "prompt"
            )
        version = probe_version or "none"
        for step, expected_remaining in trajectory:
            self.prediction_error("refined", expected_remaining, true_length - step, version)
        if trajectory and trajectory[0][0] == 0:
            self._observe_tau(version, trajectory[0][1], true_length)

    def _observe_tau(self, version: str, predicted: float, true_length: float) -> None:
        window = self._first.setdefault(version, deque(maxlen=d.ONLINE_WINDOW))
        window.append((predicted, true_length))
        if len(window) >= 8:
            from trail.predict.accuracy import kendall_tau

            pred, true = zip(*window, strict=True)
            tau = kendall_tau(np.asarray(pred), np.asarray(true))
            if np.isfinite(tau):
                d.ONLINE_KENDALL_TAU.labels(replica=self.replica, predictor=version).set(tau)


def capture_rows(replica: str, outcome: str, n: int) -> None:
    """Count captured rows by outcome (called by the worker's capture sink)."""
    if n > 0:
        d.CAPTURE_ROWS.labels(replica=replica, outcome=_bounded(outcome, d.CAPTURE_OUTCOMES)).inc(n)


def router_decision(router: str, replica: str) -> None:
    """Count one routing decision (called by the Serve request router)."""
    d.ROUTER_DECISIONS.labels(router=router, replica=replica).inc()


def router_view(router: str, replica: str, work_tokens: float) -> None:
    """Record the router's current estimate of a replica's predicted remaining work."""
    d.ROUTER_REPLICA_WORK_TOKENS.labels(router=router, replica=replica).set(work_tokens)


def router_ledger(router: str, sizes: dict[str, int]) -> None:
    """Record the size of each table of the router's ledger (the soak fits their slopes)."""
    for table, n in sizes.items():
        d.ROUTER_LEDGER_ENTRIES.labels(router=router, table=table).set(n)
