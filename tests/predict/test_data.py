"""Prompt loading, position sampling, and the evaluation's replay of refinement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trail.lab.learn.evaluate import HeldOut, choose_refinement, predictions, replay, tables
from trail.lab.learn.profile import pick_steps
from trail.lab.workload.sharegpt import first_turn, iter_records, looks_english, split_of
from trail.predict.accuracy import ConstantBaseline, kendall_tau, pairwise_accuracy
from trail.predict.bins import LengthBins
from trail.predict.refine import BayesRefiner


def test_truncated_json_yields_whole_records_only() -> None:
    recs = [{"id": f"a{i}_0", "conversations": []} for i in range(3)]
    raw = json.dumps(recs, indent=1)
    cut = raw[: raw.rindex('"id"') + 8]  # cut inside the third record
    assert [r["id"] for r in iter_records(cut)] == ["a0_0", "a1_0"]


def test_first_turn_and_language_filters() -> None:
    conv = [{"from": "human", "value": " Hi there "}, {"from": "gpt", "value": "Hello"}]
    assert first_turn({"id": "x_0", "conversations": conv}) == "Hi there"
    assert first_turn({"id": "x_1", "conversations": conv}) is None
    assert looks_english("Write a poem about the sea")
    assert not looks_english("写一首关于大海的诗")
    assert [split_of(i) for i in range(3)] == ["test", "val", "train"]


def test_picked_steps_are_the_prompt_row_plus_random_or_grid_steps() -> None:
    rng = np.random.default_rng(0)
    have = np.arange(0, 100, 8)  # what the sink kept for a train request (every 8th step)
    steps = pick_steps(have, "train", rng, 5)
    assert steps[0] == 0 and len(steps) == 6 and set(steps[1:]) <= set(have[1:])
    assert pick_steps(np.arange(40), "test", rng, 16).tolist() == [0, 1, 17, 33]
    assert pick_steps(np.array([0]), "train", rng, 16).tolist() == [0]


def test_constant_baseline_is_the_median_of_what_is_left() -> None:
    c = ConstantBaseline(np.array([10, 20, 30, 100]))
    # at g = 0 the median total; at g = 25 only 30 and 100 are still running: 5 and 75 left
    np.testing.assert_allclose(c.at(np.array([0, 25])), [25.0, 40.0])
    np.testing.assert_allclose(c.at(np.array([25]), "mean"), [40.0])


def test_pairwise_accuracy_and_tau_by_hand() -> None:
    true = np.array([1, 2, 3, 4])
    assert pairwise_accuracy(true * 10, true) == 1.0
    assert pairwise_accuracy(-true, true) == 0.0
    # one swapped pair of six, one tie of the remaining: (4 + 0.5) / 6
    assert pairwise_accuracy(np.array([2, 1, 3, 3]), true) == pytest.approx(4.5 / 6)
    assert kendall_tau(true, true) == pytest.approx(1.0)


def held(lengths: list[int], probs: list[np.ndarray]) -> HeldOut:
    return HeldOut(probs, np.array(lengths), [""] * len(lengths))


def test_replay_with_a_flat_probe_counts_the_prompt_prior_down() -> None:
    """Hand-computed: two bins of width 10, prior [0, 1]; a flat probe adds no evidence, so the
    posterior after g steps is [1 - 0.9^g, 0.9^g] and its mean is 5 + 10 x 0.9^g."""
    bins = LengthBins.uniform(2, 20)
    refiner = BayesRefiner(bins)
    probs = np.full((1, 6, 2), 0.5)
    for every in (1, 2, 3):
        pred = replay(refiner, probs, every, np.array([[0.0, 1.0]]))
        for g in range(6):
            last = g - g % every  # the posterior was last updated there, counting down since
            assert pred[0, g] == pytest.approx(5 + 10 * 0.9**last - (g - last))


def test_an_exact_probe_refined_beats_the_prompt_and_the_constant() -> None:
    bins = LengthBins.uniform(8, 512)
    lengths = [30, 200, 480, 90]
    probs = []
    for n in lengths:
        exact = np.eye(bins.k)[bins.index(n - np.arange(n))] * 0.97 + 0.03 / bins.k
        probs.append(exact)
    h = held(lengths, probs)
    flat_prompt = np.full((4, bins.k), 1.0 / bins.k)
    base = np.full(bins.k, 1.0 / bins.k)
    choice, grid = choose_refinement(h, bins, flat_prompt, base, cap=512, every=(1, 16))
    assert len(grid) == 2 * 5 * 2 * 2
    assert min(r["val_mae"] for r in grid) == next(
        r["val_mae"]
        for r in grid
        if r["predict_every"] == choice.predict_every
        and r["temper"] == choice.temper
        and r["divide_base_rate"] == choice.divide_base_rate
        and r["prompt_prior"] == choice.prompt_prior
    )
    preds, mask = predictions(
        h, bins, flat_prompt, base, ConstantBaseline(np.array(lengths)), choice, 512
    )
    t = tables(preds, h, mask)
    assert t["decode"]["probe"]["mae"] < 0.5 * t["decode"]["prompt"]["mae"]
    assert t["decode"]["refined"]["mae"] < 0.5 * t["decode"]["constant"]["mae"]
