"""Per-request TRAIL knowledge in the scheduler: policy state plus the Bayesian posterior."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trail.policy.state import LengthState
from trail.predict.bins import LengthBins


@dataclass
class Tracked:
    length: LengthState
    posterior: np.ndarray | None = None
    posterior_at: int = 0
    evidence_at: int = -1  # last step whose probe output is in the posterior
    initial_dist: list[float] | None = None
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    probe_version: str | None = None  # of the latest probe output in the posterior
    prompt_version: str | None = None  # of the ingress's prompt head that made initial_dist
    report: bool = False  # trail_return: a summary rides the finished output (report.py)
    admitted_pred: float | None = None  # predicted total output when first admitted to decode


FLAT_PREFIX = "trail_"  # plain `vllm serve` clients: vllm_xargs values must be flat
FALSE_WORDS = ("0", "false", "no", "off")


def trail_args(extra_args: dict[str, Any] | None) -> dict[str, Any]:
    """TRAIL's per-request keys: the nested extra_args["trail"] our ingress sets, over the flat
    `trail_<key>` keys a plain OpenAI client can send to `vllm serve` (vllm_xargs holds no
    nested objects), e.g. {"trail_true_len": 40, "trail_initial_pred": 12}."""
    extra = extra_args or {}
    flat = {k[len(FLAT_PREFIX) :]: v for k, v in extra.items() if k.startswith(FLAT_PREFIX)}
    return {**flat, **(extra.get("trail") or {})}


def as_flag(value: Any) -> bool:
    """A flag as JSON clients send it through vllm_xargs (true, 1, "false", ...)."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


def initial_from_request(
    request: Any, bins: LengthBins, default_prediction: float, arrival: float
) -> Tracked:
    """Initial knowledge from SamplingParams.extra_args["trail"] (set by the frontend, which ran
    the prompt predictor) or flat `trail_*` keys (trail_args), else a default; the oracle length
    from `true_len` or, with ignore_eos, from max_tokens (the request then generates exactly that
    many tokens)."""
    sp = request.sampling_params
    extra = trail_args(sp.extra_args if sp is not None else None)
    dist = extra.get("initial_dist")
    if dist is not None:
        dist = [float(x) for x in dist]
    if dist is not None and len(dist) == bins.k:
        initial = float(bins.expected(np.asarray(dist)))
    else:  # no distribution, or one over other bins (a prompt predictor unlike the probe)
        initial = float(extra.get("initial_pred", default_prediction))
    max_tokens = getattr(sp, "max_tokens", None) if sp is not None else None
    true_len = extra.get("true_len")
    if true_len is None and sp is not None and sp.ignore_eos and max_tokens:
        true_len = max_tokens
    state = LengthState(
        request_id=request.request_id,
        arrival=arrival,
        initial_pred=initial,
        true_total=int(true_len) if true_len is not None else None,
        max_tokens=max_tokens if as_flag(extra.get("use_max_tokens", True)) else None,  # rank cap
        waiting_since=arrival,
    )
    posterior = np.asarray(dist) if dist is not None and len(dist) == bins.k else None
    version = extra.get("prompt_version")
    return Tracked(
        length=state,
        posterior=posterior,
        initial_dist=dist,
        prompt_version=None if version is None else str(version),
        report=as_flag(extra.get("return", False)),
    )
