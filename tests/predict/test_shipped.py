"""The shipped SmolLM2 predictors load and reproduce their model card's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trail.predict.probe import ProbeBundle
from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptPredictor
from trail.predict.testset import load_testset
from trail.predict.train import mae

PROBE_DIR = DEFAULT_PROMPT_DIR.parent / "probe"


@pytest.fixture(scope="module")
def bundle() -> ProbeBundle:
    return ProbeBundle.load(PROBE_DIR)


def test_probe_reproduces_card_test_mae(bundle: ProbeBundle) -> None:
    t, layer = load_testset()
    assert layer == bundle.layer and bundle.probe.net[0].weight.dtype == torch.float32
    probs = bundle.probe.probs(torch.as_tensor(t.vectors, dtype=torch.float32)).double().numpy()
    got = mae(bundle.bins.expected(probs), t.labels)
    assert got == pytest.approx(bundle.card["test_mae"], abs=0.01)
    assert got < mae(np.full(len(t.labels), bundle.card["train_label_mean"]), t.labels)


def test_prompt_predictor_matches_card_and_bins(bundle: ProbeBundle) -> None:
    pred = PromptPredictor.load()
    assert pred.bins == bundle.bins  # initial_dist must live on the probe's bins
    ref = pred.card["reference"]
    np.testing.assert_allclose(pred.expected(ref["texts"]), ref["expected"], atol=0.05)
    dist = pred.predict_dist(ref["texts"])
    assert dist.shape == (3, pred.bins.k)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    t, _ = load_testset()
    got = mae(pred.expected(t.texts), t.lengths)
    assert got == pytest.approx(pred.card["test_mae"], abs=0.05)
