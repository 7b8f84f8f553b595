"""The step-cost model that prices a preemption: fitted from steps, with a fallback."""

from __future__ import annotations

import numpy as np
import pytest

from trail.policy import DEFAULT_STEP_COST, StepCost, StepCostEstimator
from trail.policy.cost import fit_step_cost


def test_fit_recovers_known_coefficients_from_noisy_steps() -> None:
    true = StepCost(base_s=0.015, per_prefill_token_s=3e-4, per_decode_seq_s=4e-3)
    rng = np.random.default_rng(0)
    est = StepCostEstimator(window=400, every=50)
    for _ in range(400):
        p, d = int(rng.integers(0, 2000)) * int(rng.random() < 0.3), int(rng.integers(1, 32))
        est.observe(p, d, true.step_seconds(p, d) * (1 + 0.02 * rng.standard_normal()))
    got = est()
    assert got.base_s == pytest.approx(true.base_s, rel=0.15)
    assert got.per_prefill_token_s == pytest.approx(true.per_prefill_token_s, rel=0.05)
    assert got.per_decode_seq_s == pytest.approx(true.per_decode_seq_s, rel=0.1)


def test_fallback_until_prefill_varies() -> None:
    decode_only = [(0.0, 8.0, 0.05)] * 40
    assert fit_step_cost(decode_only, DEFAULT_STEP_COST) is DEFAULT_STEP_COST
    assert fit_step_cost([(10.0, 1.0, 0.01)] * 3, DEFAULT_STEP_COST) is DEFAULT_STEP_COST


def test_recompute_cost_scales_with_tokens_and_batch() -> None:
    c = StepCost(base_s=0.01, per_prefill_token_s=1e-3, per_decode_seq_s=0.0)
    assert c.recompute_steps(0, 8) == 0.0
    assert c.recompute_steps(50, 1) == pytest.approx(5.0)
    assert c.recompute_steps(50, 4) == pytest.approx(20.0)  # four requests wait for it
