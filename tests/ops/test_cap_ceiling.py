"""The cap-ceiling analysis: AUC on hand-checked samples, and the script runs on the shipped
test set (its printed numbers are the ones docs/predictors.md quotes)."""

import numpy as np

from trail.lab.analyses.cap_ceiling import auc, main


def test_auc_counts_pairs_and_halves_ties():
    positive = np.array([True, True, False, False])
    assert auc(np.array([4.0, 3.0, 2.0, 1.0]), positive) == 1.0
    assert auc(np.array([1.0, 2.0, 3.0, 4.0]), positive) == 0.0
    # pairs (4>1, 4>3, 2>1, 2=2 -> half): 3.5 of 4
    assert auc(np.array([4.0, 2.0, 2.0, 1.0]), np.array([True, True, False, False])) == 0.875


def test_it_reports_the_shipped_prompt_predictor(capsys):  # noqa: ANN001
    main()
    out = capsys.readouterr().out
    assert "512 test requests" in out
    line = next(x for x in out.splitlines() if x.startswith("a perfect"))
    tau, pairwise = (float(v) for v in line.split()[-2:])
    assert 0.5 < tau <= 1.0 and 0.5 < pairwise <= 1.0
