"""Every TRAIL Prometheus metric, defined once, in multiprocess mode.

Labels stay bounded: ``replica`` (one per Serve replica), ``router``, and small enums
(``state``, ``reason``, ``phase``, ``kind``). Never a request id. Metrics are not registered in
the default registry: the exporter reads the per-node directory instead (see ``multiproc``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from trail.metrics.multiproc import enable_multiprocess

enable_multiprocess()

TOKEN_ERROR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
PROBE_SECONDS_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
FLUSH_SECONDS_BUCKETS = (5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

PREEMPTION_REASONS = ("policy", "kv_pressure", "starvation")
QUEUE_STATES = ("running", "waiting")
ERROR_PHASES = ("initial", "refined")
CAPTURE_OUTCOMES = ("written", "dropped_queue", "dropped_quota", "dropped_error")
ONLINE_WINDOW = 256
STORE_EVENT_KINDS = ("arrival", "step", "preempted", "first_token", "finished")
STORE_DROP_REASONS = ("queue_full", "redis_down", "redis_error", "invalid")
FINISH_REASONS = ("stop", "length", "abort", "error")

# --- scheduler (EngineCore process), per replica -------------------------------------------
PREDICTED_REMAINING_TOKENS = Gauge(
    "trail_predicted_remaining_tokens",
    "Sum of predicted remaining output tokens over running and waiting requests "
    "(the replica's aggregate predicted remaining work).",
    ["replica"],
    registry=None,
    multiprocess_mode="livesum",
)
QUEUE_REQUESTS = Gauge(
    "trail_queue_requests",
    "Requests in the TRAIL scheduler's queues.",
    ["replica", "state"],
    registry=None,
    multiprocess_mode="livesum",
)
PREEMPTIONS = Counter(
    "trail_preemptions",
    "Running requests preempted, by reason (policy: SPRPT decision; kv_pressure: KV cache full; "
    "starvation: for a request past the starvation bound).",
    ["replica", "reason"],
    registry=None,
)
RECOMPUTED_TOKENS = Counter(
    "trail_recomputed_tokens",
    "Tokens a preemption leaves to recompute (not in the prefix cache), by preemption reason.",
    ["replica", "reason"],
    registry=None,
)
PROBE_CALLS = Counter(
    "trail_probe_calls",
    "Probe (embedding-based length predictor) invocations, one per batch.",
    ["replica"],
    registry=None,
)
PROBE_SECONDS = Histogram(
    "trail_probe_seconds",
    "Wall time of one probe invocation.",
    ["replica"],
    registry=None,
    buckets=PROBE_SECONDS_BUCKETS,
)
PREDICTION_ABS_ERROR_TOKENS = Histogram(
    "trail_prediction_abs_error_tokens",
    "Online absolute error of length predictions vs the true length, observed at finish "
    "(initial: prompt prediction of the total; refined: each trajectory point's remaining); "
    "predictor: the prompt head's version for initial (`prompt` if unknown), the probe's for refined.",
    ["replica", "phase", "predictor"],
    registry=None,
    buckets=TOKEN_ERROR_BUCKETS,
)
AGED_REQUESTS = Counter(
    "trail_aged_requests",
    "Requests whose priority was raised by aging (waited past the aging threshold).",
    ["replica"],
    registry=None,
)
STARVATION_PROMOTIONS = Counter(
    "trail_starvation_promotions",
    "Requests promoted by the starvation guard (made non-preemptible / moved to the front).",
    ["replica"],
    registry=None,
)
REQUESTS_FINISHED = Counter(
    "trail_requests_finished",
    "Requests finished by the TRAIL scheduler, by finish reason.",
    ["replica", "finish_reason"],
    registry=None,
)
ONLINE_KENDALL_TAU = Gauge(
    "trail_online_kendall_tau",
    "Kendall tau between the refined prediction at the end of prefill (the probe's first output "
    "in the posterior) and the true length, over the last 256 finished requests of each probe "
    "version.",
    ["replica", "predictor"],
    registry=None,
    multiprocess_mode="livemostrecent",
)
CAPTURE_ROWS = Counter(
    "trail_capture_rows",
    "Hidden-state rows of sampled served requests (online learning): written, or dropped "
    "because the writer's queue was full, the disk quota spent or a write failed.",
    ["replica", "outcome"],
    registry=None,
)
POLICY_INFO = Gauge(
    "trail_policy_info",
    "1 for the scheduling policy a replica runs (fcfs, sjf_prompt, trail, ...).",
    ["replica", "policy"],
    registry=None,
    multiprocess_mode="livemax",
)

# --- prediction store (any process that writes to Redis) -----------------------------------
STORE_WRITES = Counter(
    "trail_store_writes",
    "Prediction-store events written to Redis.",
    ["kind"],
    registry=None,
)
STORE_DROPPED = Counter(
    "trail_store_dropped",
    "Prediction-store events dropped (queue full, Redis down, a failed pipeline, or invalid).",
    ["reason"],
    registry=None,
)
STORE_QUEUE_EVENTS = Gauge(
    "trail_store_queue_events",
    "Events waiting in the store's in-process queue.",
    registry=None,
    multiprocess_mode="livesum",
)
STORE_FLUSH_SECONDS = Histogram(
    "trail_store_flush_seconds",
    "Wall time of one pipelined flush to Redis.",
    registry=None,
    buckets=FLUSH_SECONDS_BUCKETS,
)

# --- router (Serve ingress) ----------------------------------------------------------------
ROUTER_DECISIONS = Counter(
    "trail_router_decisions",
    "Requests dispatched by the request router, by router kind and chosen replica.",
    ["router", "replica"],
    registry=None,
)
ROUTER_REPLICA_WORK_TOKENS = Gauge(
    "trail_router_replica_work_tokens",
    "The router's view of each replica's predicted remaining work (published stats + work it "
    "dispatched since).",
    ["router", "replica"],
    registry=None,
    multiprocess_mode="livemax",
)
ROUTER_LEDGER_ENTRIES = Gauge(
    "trail_router_ledger_entries",
    "Entries in one ingress router's ledger, by table (pending: dispatched, not yet in the "
    "stats; routed: awaiting completion; finished: ghosts kept STALE_AFTER_S; ids: Serve's "
    "request ids awaiting completion). Bounded by the requests in flight: growth is a leak.",
    ["router", "table"],
    registry=None,
    multiprocess_mode="liveall",
)

ALL_METRICS = (
    PREDICTED_REMAINING_TOKENS,
    QUEUE_REQUESTS,
    PREEMPTIONS,
    RECOMPUTED_TOKENS,
    PROBE_CALLS,
    PROBE_SECONDS,
    PREDICTION_ABS_ERROR_TOKENS,
    ONLINE_KENDALL_TAU,
    CAPTURE_ROWS,
    AGED_REQUESTS,
    STARVATION_PROMOTIONS,
    REQUESTS_FINISHED,
    POLICY_INFO,
    STORE_WRITES,
    STORE_DROPPED,
    STORE_QUEUE_EVENTS,
    STORE_FLUSH_SECONDS,
    ROUTER_DECISIONS,
    ROUTER_REPLICA_WORK_TOKENS,
    ROUTER_LEDGER_ENTRIES,
)

__all__ = [name for name in dir() if name.isupper()]
