"""Bins, data-driven edges and the Bayesian refinement math."""

from __future__ import annotations

import numpy as np
import pytest

from trail.predict.binning import quantile_edges, quantisation_mae
from trail.predict.bins import LengthBins
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


def test_count_down_matches_matrix_power() -> None:
    bins = LengthBins.from_edges([0, 16, 48, 128, 512])
    refiner = BayesRefiner(bins)
    t = transition_matrix(bins)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    post = np.array([0.0, 0.2, 0.3, 0.5])
    for j in (1, 5, 37):
        np.testing.assert_allclose(refiner.prior(post, j), post @ np.linalg.matrix_power(t, j))
    # equal widths and an empty bin 0: a flat likelihood moves the mean down exactly 1 per token
    even = BayesRefiner(LengthBins.uniform(4, 400))
    one_step = even.update(post, 1, np.ones(4))
    assert even.expected(one_step) == pytest.approx(even.expected(post) - 1.0)
