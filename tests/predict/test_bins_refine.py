"""Bins, data-driven edges and the Bayesian refinement math."""

from __future__ import annotations

import numpy as np
import pytest

from trail.predict.bins import LengthBins, quantile_edges, quantisation_mae
from trail.predict.refine import BayesRefiner, transition_matrix


def test_expected_value_of_one_hot_is_the_midpoint() -> None:
    bins = LengthBins.from_edges([0, 10, 30, 100])
    assert bins.expected(np.eye(3)).tolist() == [5.0, 20.0, 65.0]
    assert bins.expected(np.array([0.5, 0.5, 0.0])) == pytest.approx(12.5)
    assert bins.index([0, 9.9, 10, 99, 500]).tolist() == [0, 0, 1, 2, 2]


def test_quantile_edges_follow_the_data() -> None:
    rng = np.random.default_rng(0)
    natural = np.minimum(rng.exponential(120, 900).astype(int) + 1, 511)
    labels = np.concatenate([natural, np.full(300, 512)])  # answers that loop to the cap
    bins = quantile_edges(labels, k=10, cap=512)
    assert bins.edges[0] == 0 and bins.edges[-1] == 512 and bins.edges[-2] == 496
    assert np.all(np.diff(bins.edges) >= 8)
    share = np.bincount(bins.index(natural), minlength=bins.k)[:-1] / len(natural)
    assert share.max() < 0.15  # equal mass below the cap bin
    assert quantisation_mae(bins, labels) < quantisation_mae(LengthBins.uniform(10, 512), labels)


def test_known_prior_and_likelihood_give_known_posterior() -> None:
    bins = LengthBins.uniform(3, 30)
    refiner = BayesRefiner(bins)
    prior, likelihood = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.25, 0.25])
    expected = np.array([0.1, 0.075, 0.125]) / 0.3
    np.testing.assert_allclose(refiner.update(prior, 0, likelihood), expected)
    np.testing.assert_allclose(refiner.update(None, 7, likelihood), likelihood)


def test_count_down_gives_the_hand_computed_prior_and_posterior() -> None:
    # two bins of width 10: one token moves 1/10 of bin 1's mass to bin 0, which absorbs
    refiner = BayesRefiner(LengthBins.uniform(2, 20))
    np.testing.assert_allclose(transition_matrix(refiner.bins), [[1.0, 0.0], [0.1, 0.9]])
    np.testing.assert_allclose(refiner.prior(np.array([0.0, 1.0]), 2), [0.19, 0.81])
    posterior = refiner.update(np.array([0.0, 1.0]), 2, np.array([0.5, 0.25]))
    np.testing.assert_allclose(posterior, np.array([0.095, 0.2025]) / 0.2975)


def test_tempered_likelihood_ratio_by_hand() -> None:
    """alpha = 0.5 and a base rate [0.8, 0.2]: likelihood = sqrt(p / base)."""
    refiner = BayesRefiner(LengthBins.uniform(2, 20), temper=0.5, base_rate=np.array([0.8, 0.2]))
    prior, probe = np.array([0.5, 0.5]), np.array([0.2, 0.8])
    lik = np.sqrt([0.2 / 0.8, 0.8 / 0.2])  # [0.5, 2.0]
    np.testing.assert_allclose(refiner.update(prior, 0, probe), lik / lik.sum())
    # the request's first output is independent of the prompt prior: full weight, ratio only
    full = np.array([0.2 / 0.8, 0.8 / 0.2]) * prior
    np.testing.assert_allclose(refiner.update(prior, 0, probe, first=True), full / full.sum())
    # the first output is the first posterior as is: it already holds the training prior
    np.testing.assert_allclose(refiner.update(None, 3, probe), probe)
    with pytest.raises(ValueError, match="temper"):
        BayesRefiner(LengthBins.uniform(2, 20), temper=0.0)


def test_flat_likelihood_counts_down_one_token_per_step() -> None:
    post = np.array([0.0, 0.2, 0.3, 0.5])
    even = BayesRefiner(LengthBins.uniform(4, 400))
    one_step = even.update(post, 1, np.ones(4))
    assert even.expected(one_step) == pytest.approx(even.expected(post) - 1.0)
