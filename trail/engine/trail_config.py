"""TRAIL settings for one engine. They travel to vLLM's processes inside `TrailOverrides`
(trail/engine/overrides.py) so that the worker (capture, probe) and the scheduler (policy,
refinement) read one truth."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from trail.models.paths import SMOLLM2_ASSETS
from trail.policy.spec import POLICIES, PolicyConfig, PredictionSource, get_policy
from trail.predict.bins import LengthBins
from trail.predict.refine import BayesRefiner


@dataclass(frozen=True)
class RefineSettings:
    predict_every: int
    temper: float
    base_rate: list[float] | None  # divide the probe output by this training prior
    prompt_prior: bool


DEFAULT_PROBE_DIR = SMOLLM2_ASSETS / "probe"


class TrailConfig(BaseModel):
    policy: str = Field("trail", description=f"one of {sorted(POLICIES)}")
    c: float | None = Field(
        None, ge=0, description="limited-preemption factor (policy default 0.8)"
    )
    margin_tokens: float | None = Field(None, ge=0)
    max_preemptions: int | None = Field(None, ge=0)
    aging_tokens_per_s: float = Field(0.0, ge=0)
    aging_after_s: float = Field(0.0, ge=0, description="waiting grace before aging starts")
    starvation_s: float = Field(math.inf, gt=0, description="hard bound on a request's wait")
    rank_bucket_tokens: float | None = Field(
        None,
        ge=0,
        description="predictions within one bucket of this many tokens rank equal, "
        "FCFS among them (0: exact order)",
    )
    rank_lane_seqs: int | None = Field(
        None,
        ge=0,
        description="prefill-to-rank: arrivals prefilled beside the full decode batch so the "
        "probe ranks them before they wait (0: off); vLLM gets this many more sequences",
    )
    rank_lane_tokens: int | None = Field(None, ge=1, description="lane prompt tokens per step")
    rank_lane_max_parked: int | None = Field(
        None, ge=0, description="requests parked (prefilled, KV cached) at once"
    )
    probe_path: str | None = Field(None, description="dir with probe.json + probe.pt")
    layer: int | None = Field(None, ge=0, description="capture layer (default: the probe's)")
    predict_every: int | None = Field(
        None, ge=1, description="run the probe every N decode steps (default: the probe card's)"
    )
    refine_temper: float | None = Field(
        None, gt=0, le=1, description="Bayes likelihood temper (default: the probe card's)"
    )
    refine_prompt_prior: bool | None = Field(
        None, description="start the posterior from the prompt prediction (default: card's)"
    )
    capture: bool | None = Field(None, description="capture hidden states (default: if needed)")
    ship_vectors: bool = Field(False, description="also ship raw vectors (tests)")
    capture_layers: list[int] | None = Field(
        None, description="layers the worker captures (default: the probe's layer)"
    )
    capture_dir: str | None = Field(
        None, description="worker-side sink for the rows of requests that ask for capture"
    )
    capture_quota_mb: float | None = Field(
        None,
        gt=0,
        description="disk quota of this worker's rows; past it they are dropped and counted",
    )
    capture_queue_rows: int = Field(
        0,
        ge=0,
        description="0: write on the step (profiling, lossless); N: a background writer "
        "behind an N-row queue that drops when full (served traffic, never blocks the step)",
    )
    bins: list[float] | None = Field(None, description="bin edges (default: the probe's)")
    dump_path: str | None = Field(None, description="append scheduler events as JSONL here")
    load_path: str | None = Field(None, description="publish EngineLoad JSON here (Serve)")
    redis_url: str | None = Field(None, description="write per-request predictions here")
    store_distributions: bool = Field(False, description="also store each refined distribution")
    store_ttl_s: int = Field(
        86400,
        ge=1,
        description="every record key expires after this: Redis memory levels off at about "
        "request rate x ttl (the soak uses minutes to see it flat; ops/soak)",
    )
    replica: str = Field("local", description="replica name in metrics and records")
    default_prediction: float = Field(256.0, gt=0, description="initial prediction if none given")
    step_cost: dict[str, float] | None = Field(
        None,
        description="pin the step-cost model {base_s, per_prefill_token_s, per_decode_seq_s} "
        "that prices a preemption's recompute (default: fitted online from the engine's steps)",
    )

    model_config = {"extra": "forbid"}
    _refine: RefineSettings | None = PrivateAttr(None)

    def policy_config(self) -> PolicyConfig:
        overrides: dict[str, Any] = {
            "aging_tokens_per_s": self.aging_tokens_per_s,
            "aging_after_s": self.aging_after_s,
            "starvation_s": self.starvation_s,
        }
        for name in (
            "c",
            "margin_tokens",
            "max_preemptions",
            "rank_bucket_tokens",
            "rank_lane_seqs",
            "rank_lane_tokens",
            "rank_lane_max_parked",
        ):
            value = getattr(self, name)
            if value is not None:
                overrides[name] = value
        return get_policy(self.policy, **overrides)

    def refine_settings(self) -> RefineSettings:
        """The served refinement: explicit settings win, else what `trail eval` chose for this
        probe (its card's "served" entry), else the paper's rule at every step."""
        if self._refine is None:
            bundle = self.probe_bundle if self.needs_probe or self.probe_path else None
            card = (bundle.card.get("served") if bundle is not None else None) or {}
            self._refine = RefineSettings(
                predict_every=self.predict_every or int(card.get("predict_every", 1)),
                temper=self.refine_temper or float(card.get("temper", 1.0)),
                base_rate=card.get("base_rate"),
                prompt_prior=(
                    self.refine_prompt_prior
                    if self.refine_prompt_prior is not None
                    else bool(card.get("prompt_prior", True))
                ),
            )
        return self._refine

    def refiner(self) -> BayesRefiner:
        r = self.refine_settings()
        base = None if r.base_rate is None else np.asarray(r.base_rate, dtype=float)
        return BayesRefiner(self.resolved_bins(), temper=r.temper, base_rate=base)

    @property
    def needs_probe(self) -> bool:
        return POLICIES[self.policy].source is PredictionSource.REFINED

    def resolved_probe_path(self) -> Path | None:
        if self.probe_path:
            return Path(self.probe_path)
        if self.needs_probe and (DEFAULT_PROBE_DIR / "probe.json").exists():
            return DEFAULT_PROBE_DIR
        return None

    @cached_property
    def probe_bundle(self):  # noqa: ANN201 - ProbeBundle | None (torch import deferred)
        path = self.resolved_probe_path()
        if path is None:
            if self.needs_probe:
                raise ValueError(
                    f"policy {self.policy!r} needs a trained probe: set trail.probe_path "
                    "(train one with `trail train probe`)"
                )
            return None
        from trail.predict.probe import ProbeBundle

        return ProbeBundle.load(path)

    def resolved_layer(self) -> int:
        if self.layer is not None:
            return self.layer
        bundle = self.probe_bundle
        if bundle is None:
            if self.capture_layers:
                return self.capture_layers[0]
            raise ValueError("trail.layer is required when no probe is configured")
        return bundle.layer

    def resolved_capture_layers(self) -> list[int]:
        """What the worker captures, sorted (vLLM returns aux states in layer order); the
        probe's layer is always among them."""
        layers = list(self.capture_layers or [])
        if self.probe_bundle is not None or not layers:
            layer = self.resolved_layer()
            layers = layers if layer in layers else [layer, *layers]
        return sorted(set(layers))

    def resolved_bins(self) -> LengthBins:
        if self.bins:
            return LengthBins.from_edges(self.bins)
        bundle = self.probe_bundle
        return bundle.bins if bundle is not None else LengthBins.uniform(10, 512)

    def wants_capture(self) -> bool:
        if self.capture is not None:
            return self.capture
        return self.needs_probe or self.ship_vectors or self.capture_dir is not None
