"""The shipped SmolLM2 predictors reproduce their model card on the committed test set, and the
engine serves the refinement the evaluation chose."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from trail.engine.trail_config import TrailConfig
from trail.lab.learn.testset import load_testset, verify_outputs
from trail.predict.probe import ProbeBundle
from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptPredictor

PROBE_DIR = DEFAULT_PROMPT_DIR.parent / "probe"
EVAL = DEFAULT_PROMPT_DIR.parent / "eval.json"


@pytest.fixture(scope="module")
def bundle() -> ProbeBundle:
    return ProbeBundle.load(PROBE_DIR)


def test_committed_outputs_are_the_shipped_probes(bundle: ProbeBundle) -> None:
    held, meta, grid = load_testset()
    assert meta["layer"] == bundle.layer and bundle.probe.net[0].weight.dtype == torch.float32
    assert verify_outputs(held, grid, bundle) < 2e-3
    # a different probe (perturbed weights) is caught
    other = ProbeBundle.load(PROBE_DIR)
    with torch.no_grad():
        other.probe.net[2].bias += torch.linspace(-2, 2, other.bins.k)
    with pytest.raises(ValueError, match="not this probe"):
        verify_outputs(held, grid, other)


def test_served_refinement_is_the_evaluated_one(bundle: ProbeBundle) -> None:
    served = bundle.card["served"]
    report = json.loads(EVAL.read_text())
    assert report["refinement"] == served["refinement"]
    r = TrailConfig(policy="trail").refine_settings()  # the engine's defaults for this probe
    assert r.predict_every == served["refinement"]["predict_every"]
    assert r.temper == served["refinement"]["temper"]
    assert r.prompt_prior == served["refinement"]["prompt_prior"]
    assert (r.base_rate is not None) == served["refinement"]["divide_base_rate"]


@pytest.mark.slow
def test_eval_shipped_reproduces_the_card(tmp_path) -> None:
    from trail.cli.eval import app

    out = tmp_path / "eval.json"
    args = ["--shipped", "--report", str(out), "--plots", str(tmp_path), "--no-cost"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    got, card = json.loads(out.read_text()), json.loads(EVAL.read_text())
    for where in ("prefill", "decode", "all"):
        for name in ("constant", "prompt", "probe", "refined"):
            assert got["tables"][where][name]["mae"] == pytest.approx(
                card["tables"][where][name]["mae"], abs=0.05
            ), (where, name)
            assert got["tables"][where][name]["kendall_tau"] == pytest.approx(
                card["tables"][where][name]["kendall_tau"], abs=0.002
            )


def test_constant_baseline_is_the_training_median(bundle: ProbeBundle) -> None:
    """The report's prefill constant is the median of the training totals, not a mean of
    remaining labels (the old, misstated baseline)."""
    held, meta, _ = load_testset()
    median = float(np.median(meta["train_lengths"]))
    want = float(np.mean(np.abs(np.minimum(median, 512) - held.lengths)))
    report = json.loads(EVAL.read_text())
    assert report["tables"]["prefill"]["constant"]["mae"] == pytest.approx(want, abs=0.01)


def test_prompt_predictor_matches_card_and_bins(bundle: ProbeBundle) -> None:
    pred = PromptPredictor.load()
    assert pred.bins == bundle.bins  # initial_dist must live on the probe's bins
    ref = pred.card["reference"]
    np.testing.assert_allclose(pred.expected(ref["texts"]), ref["expected"], atol=0.05)
    dist = pred.predict_dist(ref["texts"])
    assert dist.shape == (3, pred.bins.k)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-6)  # float32 sums
