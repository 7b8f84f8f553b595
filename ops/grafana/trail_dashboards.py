"""The TRAIL dashboards, as code. Metric names: trail/metrics/definitions.py and vLLM 0.32.

``$replica`` / ``$router`` are multi-select label variables (All = ``.*``), ``$__rate_interval``
is Grafana's; :func:`ops.grafana.promql.for_prometheus` substitutes both to run a query as-is.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from ops.grafana.panels import RATE, PanelSpec, Query, build_dashboard, label_variable

R = '{replica=~"$replica"}'


def _rate(metric: str, by: str, selector: str = R) -> str:
    return f"sum by ({by}) (rate({metric}{selector}[{RATE}]))"


def _quantile(q: float, histogram: str, by: str = "le", selector: str = R) -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({histogram}_bucket{selector}[{RATE}])))"


def _mean(histogram: str, by: str, selector: str = R) -> str:
    return (
        f"sum by ({by}) (rate({histogram}_sum{selector}[{RATE}]))"
        f" / sum by ({by}) (rate({histogram}_count{selector}[{RATE}]))"
    )


LOAD = [
    PanelSpec(
        "Predicted remaining work per replica",
        "Sum of predicted remaining output tokens over a replica's requests: what the router "
        "balances on.",
        (Query(f"sum by (replica) (trail_predicted_remaining_tokens{R})", "{{replica}}"),),
        unit="none",
    ),
    PanelSpec(
        "Queue depth",
        "Running and waiting requests in each TRAIL scheduler.",
        (Query(f"sum by (replica, state) (trail_queue_requests{R})", "{{replica}} {{state}}"),),
    ),
    PanelSpec(
        "Scheduling policy",
        "The policy each replica runs (trail_policy_info).",
        (Query(f"max by (replica, policy) (trail_policy_info{R})", "{{replica}}: {{policy}}"),),
        kind="stat",
        width=24,
        height=4,
    ),
]

FAIRNESS = [
    PanelSpec(
        "Preemptions by reason",
        "policy: SPRPT with limited preemption; kv_pressure: KV cache exhausted; "
        "starvation: room made for a request past the starvation bound.",
        (Query(_rate("trail_preemptions_total", "reason"), "{{reason}}"),),
        unit="reqps",
        stacked=True,
    ),
    PanelSpec(
        "Recomputed tokens by reason",
        "Tokens preemptions leave to recompute (not held by the prefix cache): the price paid.",
        (Query(_rate("trail_recomputed_tokens_total", "reason"), "{{reason}}"),),
        unit="short",
        stacked=True,
    ),
    PanelSpec(
        "Aging and starvation guard",
        "Requests promoted by aging, and by the starvation guard, per second.",
        (
            Query(_rate("trail_aged_requests_total", "replica"), "aged {{replica}}"),
            Query(_rate("trail_starvation_promotions_total", "replica"), "starved {{replica}}"),
        ),
        unit="reqps",
    ),
]

PREDICTOR = [
    PanelSpec(
        "Probe calls",
        "Embedding-probe invocations per second (one per scheduled batch).",
        (Query(_rate("trail_probe_calls_total", "replica"), "{{replica}}"),),
        unit="ops",
        width=8,
    ),
    PanelSpec(
        "Probe time",
        "Wall time per probe call: mean and p99.",
        (
            Query(_mean("trail_probe_seconds", "replica"), "mean {{replica}}"),
            Query(_quantile(0.99, "trail_probe_seconds", "le, replica"), "p99 {{replica}}"),
        ),
        unit="s",
        width=8,
    ),
    PanelSpec(
        "Online prediction error by phase",
        "|predicted - true| in tokens, observed at finish. initial: prompt prediction of the "
        "length; refined: each step's predicted remaining.",
        (
            Query(_mean("trail_prediction_abs_error_tokens", "phase"), "mean {{phase}}"),
            Query(
                _quantile(0.9, "trail_prediction_abs_error_tokens", "le, phase"), "p90 {{phase}}"
            ),
        ),
        unit="none",
        width=8,
    ),
]

REFINED = '{replica=~"$replica", phase="refined"}'
ONLINE = [
    PanelSpec(
        "Online MAE by probe version",
        "Mean |predicted - true remaining| of the refined predictions, by the probe version that "
        "made them: a hot-reloaded probe (online learning) shows as a new series.",
        (Query(_mean("trail_prediction_abs_error_tokens", "predictor", REFINED), "{{predictor}}"),),
        unit="none",
        width=8,
    ),
    PanelSpec(
        "Online Kendall tau by probe version",
        "Rank agreement of the end-of-prefill prediction with the true length over each "
        "version's last 256 finished requests (what shortest-first ordering uses).",
        (Query(f"max by (predictor) (trail_online_kendall_tau{R})", "{{predictor}}"),),
        unit="none",
        width=8,
    ),
    PanelSpec(
        "Captured rows by outcome",
        "Hidden-state rows of sampled served requests: written, or dropped (writer queue "
        "full, disk quota spent). Dropping never blocks a step.",
        (Query(_rate("trail_capture_rows_total", "outcome"), "{{outcome}}"),),
        unit="ops",
        width=8,
        stacked=True,
    ),
]

STORE = [
    PanelSpec(
        "Redis writes by kind",
        "Prediction-store events written per second.",
        (Query(_rate("trail_store_writes_total", "kind", ""), "{{kind}}"),),
        unit="ops",
        width=8,
        stacked=True,
    ),
    PanelSpec(
        "Redis drops by reason",
        "Events dropped by the best-effort writer (serving never waits for Redis).",
        (Query(_rate("trail_store_dropped_total", "reason", ""), "{{reason}}"),),
        unit="ops",
        width=8,
    ),
    PanelSpec(
        "Writer queue",
        "Events waiting in the writers' in-process queues.",
        (Query("sum(trail_store_queue_events)", "queued events"),),
        width=4,
    ),
    PanelSpec(
        "Flush time p99",
        "p99 wall time of one pipelined flush to Redis.",
        (Query(_quantile(0.99, "trail_store_flush_seconds", selector=""), "p99"),),
        unit="s",
        width=4,
    ),
]

ROUTER = [
    PanelSpec(
        "Routing decisions per replica",
        "Requests dispatched by the Serve request router to each replica.",
        (
            Query(
                _rate("trail_router_decisions_total", "router, replica", '{router=~"$router"}'),
                "{{router}} → {{replica}}",
            ),
        ),
        unit="reqps",
        width=24,
        stacked=True,
    ),
]

V = ""  # vLLM metrics carry model_name/engine labels, not replica

VLLM_LOAD = [
    PanelSpec(
        "vLLM requests running / waiting",
        "vLLM's own gauges (per engine; several replicas of one model on one node merge).",
        (
            Query(f"sum by (instance) (vllm:num_requests_running{V})", "running {{instance}}"),
            Query(f"sum by (instance) (vllm:num_requests_waiting{V})", "waiting {{instance}}"),
        ),
        width=8,
    ),
    PanelSpec(
        "KV cache usage",
        "Fraction of KV-cache blocks in use.",
        (Query(f"max by (instance) (vllm:kv_cache_usage_perc{V})", "{{instance}}"),),
        unit="percentunit",
        width=8,
    ),
    PanelSpec(
        "Token throughput",
        "Prompt and generated tokens per second.",
        (
            Query(f"sum(rate(vllm:prompt_tokens_total{V}[{RATE}]))", "prompt"),
            Query(f"sum(rate(vllm:generation_tokens_total{V}[{RATE}]))", "generation"),
        ),
        unit="none",
        width=8,
    ),
]


def _latency_panel(title: str, histogram: str, description: str) -> PanelSpec:
    queries = tuple(
        Query(_quantile(q, histogram, selector=V), f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)
    )
    return PanelSpec(title, description, queries, unit="s", width=12)


VLLM_LATENCY = [
    _latency_panel(
        "End-to-end latency", "vllm:e2e_request_latency_seconds", "Arrival to last token."
    ),
    _latency_panel("Time to first token", "vllm:time_to_first_token_seconds", "TTFT."),
    _latency_panel(
        "Queueing time", "vllm:request_queue_time_seconds", "Time spent WAITING (vLLM's view)."
    ),
    _latency_panel(
        "Inter-token latency", "vllm:inter_token_latency_seconds", "Time between output tokens."
    ),
    PanelSpec(
        "Finished requests by reason",
        "vLLM request_success by finished_reason (stop / length / abort).",
        (
            Query(
                f"sum by (finished_reason) (rate(vllm:request_success_total{V}[{RATE}]))",
                "{{finished_reason}}",
            ),
        ),
        unit="reqps",
        stacked=True,
    ),
    PanelSpec(
        "vLLM preemptions",
        "vLLM's own preemption counter (all reasons), to compare with TRAIL's.",
        (Query(f"sum(rate(vllm:num_preemptions_total{V}[{RATE}]))", "preemptions"),),
        unit="reqps",
    ),
]


def scheduling_dashboard() -> Dashboard:
    return build_dashboard(
        uid="trail-scheduling",
        title="TRAIL / scheduling and predictions",
        description="TRAIL scheduler, predictor, prediction store and router (trail_* metrics).",
        rows=[
            ("Load per replica", LOAD),
            ("Preemption and fairness", FAIRNESS),
            ("Length predictor", PREDICTOR),
            ("Online learning", ONLINE),
            ("Prediction store (Redis)", STORE),
            ("Router", ROUTER),
        ],
        variables=[
            label_variable("replica", "trail_queue_requests", "replica"),
            label_variable("router", "trail_router_decisions_total", "router"),
        ],
    )


def serving_dashboard() -> Dashboard:
    return build_dashboard(
        uid="trail-vllm",
        title="TRAIL / vLLM serving",
        description="vLLM's standard engine metrics for the replicas running TRAIL.",
        rows=[("Engine load", VLLM_LOAD), ("Latency", VLLM_LATENCY)],
        variables=[],
    )


def all_dashboards() -> dict[str, Dashboard]:
    """File stem -> dashboard builder, for rendering and pushing."""
    return {"trail-scheduling": scheduling_dashboard(), "trail-vllm": serving_dashboard()}
