"""trail.lab.analyses.served_accuracy on a hand-made replay folder: the numbers are known."""

from __future__ import annotations

import json

import pytest

from trail.lab.analyses.served_accuracy import accuracy


def write_cell(run, seed: int, requests: dict, initial: list | None) -> None:
    folder = run / "cells" / f"seed{seed}" / "load2.5"
    folder.mkdir(parents=True)
    (folder / "trail.json").write_text(
        json.dumps({"initial_expected": initial, "requests": requests})
    )


def test_scores_pool_seeds_and_read_the_prediction_held_at_each_position(tmp_path) -> None:
    # seed 0: the prompt ranks perfectly; the probe's first word at 0, its second at 12
    write_cell(
        tmp_path,
        0,
        {
            "q0": {"length": 10, "refined": [[0, 30.0]]},
            "q1": {"length": 512, "refined": [[0, 20.0], [12, 400.0]]},
        },
        [5.0, 300.0],
    )
    # seed 1: the prompt ranks backwards; the probe never spoke for q0
    write_cell(
        tmp_path,
        1,
        {"q0": {"length": 100, "refined": []}, "q1": {"length": 50, "refined": [[0, 40.0]]}},
        [10.0, 90.0],
    )
    got = accuracy(tmp_path, "trail", cap=512)
    prompt = got["prompt (total length)"]
    assert prompt["n"] == 4
    assert prompt["mae"] == pytest.approx((5 + 212 + 90 + 40) / 4, abs=0.1)
    assert prompt["cap_auc"] == 1.0  # 300 beats 5, 10, 90
    at0 = got["refined at 0 generated (remaining)"]
    assert at0["n"] == 3  # q0 of seed 1 had no prediction
    assert at0["cap_auc"] == 0.0  # the looper was predicted the shortest: 20 < 30, 40
    at16 = got["refined at 16 generated (remaining)"]
    # alive at 16: 512 (held 400 since 12) and 100 and 50 (40 held since 0; q0 of seed 1: none)
    assert at16["n"] == 2 and at16["tau"] == pytest.approx(1.0)
    assert at16["mae"] == pytest.approx(((496 - 400) + (40 - 34)) / 2, abs=0.1)


def test_cells_without_predictions_are_a_clear_error(tmp_path) -> None:
    write_cell(tmp_path, 0, {"q0": {"length": 10}}, None)
    with pytest.raises(SystemExit, match="no recorded predictions"):
        accuracy(tmp_path, "trail")
