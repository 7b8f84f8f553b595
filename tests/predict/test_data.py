"""Prompt loading, position sampling, and the evaluation's replay of refinement."""

from __future__ import annotations

import json

import numpy as np

from trail.predict.bins import LengthBins
from trail.predict.evaluate import TestRows, mae_table, predictions, refine_rows
from trail.predict.hidden import sample_steps
from trail.predict.refine import transition_matrix
from trail.predict.sharegpt import first_turn, iter_records, looks_english, split_of


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


def test_sampled_steps_stay_inside_the_answer() -> None:
    rng = np.random.default_rng(0)
    steps = sample_steps(100, "train", rng, 16, 16)
    assert len(steps) == 16 and len(set(steps)) == 16 and steps.min() >= 1 and steps.max() <= 99
    assert sample_steps(40, "test", rng, 16, 16).tolist() == [1, 17, 33]
    assert len(sample_steps(1, "train", rng, 16, 16)) == 0


def rows_for(bins: LengthBins, lengths: list[int], stride: int) -> TestRows:
    req, steps = [], []
    for r, n in enumerate(lengths):
        s = [0, *range(1, n, stride)]
        req += [r] * len(s)
        steps += s
    steps_a = np.array(steps)
    labels = np.array(lengths)[req] - steps_a
    return TestRows(np.array(req), steps_a, labels, np.zeros((len(req), 1)), np.array(lengths), [])


def test_flat_probe_leaves_the_prompt_prior_counting_down() -> None:
    bins = LengthBins.from_edges([0, 20, 60, 200, 496, 512])
    t = rows_for(bins, [50, 300], 16)
    prompt = np.array([[0.1, 0.6, 0.2, 0.05, 0.05], [0.0, 0.1, 0.2, 0.3, 0.4]])
    post = refine_rows(bins, prompt, np.ones((len(t.steps), bins.k)), t)
    tm = transition_matrix(bins)
    for row in range(len(t.steps)):
        want = prompt[t.row_request[row]] @ np.linalg.matrix_power(tm, int(t.steps[row]))
        np.testing.assert_allclose(post[row], want, atol=1e-12)


def test_a_perfect_probe_beats_the_prompt_and_the_mean() -> None:
    bins = LengthBins.uniform(8, 512)
    t = rows_for(bins, [30, 200, 480], 16)
    exact = np.eye(bins.k)[bins.index(t.labels)] * 0.97 + 0.03 / bins.k
    prompt = np.full((3, bins.k), 1.0 / bins.k)
    table = mae_table(predictions(bins, prompt, exact, t, float(t.labels.mean())), t)
    assert table["probe"]["all"] < 0.5 * table["prompt"]["all"]
    assert table["refined"]["all"] < 0.5 * table["mean"]["all"]
