"""Training: loss falls on a learnable toy set; folding the standardiser keeps the function."""

from __future__ import annotations

import numpy as np
import torch

from trail.lab.learn.train import (
    Recipe,
    Standardiser,
    expected_lengths,
    fold_standardiser,
    mae,
    train_classifier,
)
from trail.predict.bins import LengthBins
from trail.predict.probe import ProbeBundle, ProbeMLP


def toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths that are a noisy linear function of 16-d inputs with a large offset and scale."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)) * 30 + 100
    y = np.clip(250 + 200 * np.tanh((x[:, 0] - 100) / 30) + rng.normal(0, 5, n), 1, 511)
    return x.astype(np.float32), y


def test_training_learns_a_learnable_toy_set() -> None:
    bins = LengthBins.uniform(8, 512)
    xt, yt = toy(800, 0)
    xv, yv = toy(200, 1)
    res = train_classifier(
        ProbeMLP(16, bins.k, width=32), xt, yt, xv, yv, bins, Recipe(epochs=6), progress=False
    )
    assert res.losses[-1] < 0.6 * res.losses[0]
    baseline = mae(np.full(len(yv), yt.mean()), yv)
    assert res.val_mae < 0.5 * baseline
    # the returned module takes raw inputs (standardiser folded in) and reproduces val MAE
    again = mae(expected_lengths(res.model, torch.as_tensor(xv), bins), yv)
    assert abs(again - res.val_mae) < 1e-3


def test_fold_standardiser_is_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(50, 6) * 7 + 3
    s = Standardiser.fit(x)
    lin = torch.nn.Linear(6, 4)
    before = lin(s(x))
    fold_standardiser(lin, s)
    torch.testing.assert_close(lin(x), before, rtol=1e-4, atol=1e-4)


def test_bundle_round_trip(tmp_path) -> None:  # noqa: ANN001
    bins = LengthBins.from_edges([0, 20, 100, 512])
    probe = ProbeMLP(12, bins.k)
    ProbeBundle(probe, 5, bins, {"test_mae": 1.0}).save(tmp_path)
    loaded = ProbeBundle.load(tmp_path)
    x = torch.randn(3, 12)
    assert loaded.layer == 5 and loaded.bins == bins and loaded.card["test_mae"] == 1.0
    torch.testing.assert_close(loaded.probe.probs(x), probe.probs(x))


def test_warm_start_is_the_same_function_on_standardised_inputs():
    """Fine-tuning a shipped (folded) model starts from exactly what it computes."""
    import numpy as np
    import torch

    from trail.lab.learn.train import Standardiser, warm_start
    from trail.predict.probe import ProbeMLP

    torch.manual_seed(0)
    model = ProbeMLP(6, 4)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 6)).astype(np.float32)
    warm = warm_start(model, x)
    s = Standardiser.fit(torch.as_tensor(x))
    with torch.no_grad():
        assert torch.allclose(warm(s(torch.as_tensor(x))), model(torch.as_tensor(x)), atol=1e-4)
