"""`python -m trail.lab.analyses.sim_variants`: policy variants simulated on a replay's recorded cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from trail.lab.analyses.sim_variants import simulate_variants
from trail.lab.bench.experiment import Cells


def _cell(lengths: list[int], predicted: list[float]) -> dict:
    """A recorded run: requests arriving 1 ms apart, a linear step cost to calibrate from."""
    requests = {
        f"q{i}": {
            "arrival_s": 0.001 * i,
            "length": n,
            "prompt_tokens": 20,
            "latency_s": 1.0 + i,  # what the engine measured (only its ratio is read)
        }
        for i, n in enumerate(lengths)
    }
    steps = [
        {
            "prefill_tokens": p,
            "decode_seqs": d,
            "context_tokens": 40 * d,
            "step_s": 0.01 + 0.001 * d,
        }
        for p, d in [(0, 4), (20, 8), (0, 16), (40, 12), (0, 2)]
    ]
    return {"seed": 0, "initial_expected": predicted, "requests": requests, "steps": steps}


def test_exact_lengths_beat_fcfs_on_a_tail_and_the_engine_ratio_sits_beside(tmp_path: Path):
    lengths = [400] * 16 + [10] * 48  # a full batch of loopers in front of short answers
    cells = Cells(tmp_path / "cells")
    cells.put(0, 2.5, "fcfs", _cell(lengths, [100.0] * 64))
    cells.put(0, 2.5, "trail", _cell(lengths, [100.0] * 64))
    got = simulate_variants(tmp_path, 2.5, "sjf-prompt,trail-oracle")
    assert got["fcfs"]["sim"] == pytest.approx(1.0) and got["fcfs"]["engine"] == pytest.approx(1.0)
    assert got["trail-oracle"]["sim"] > 1.5  # shortest first, with the true lengths
    assert got["sjf-prompt"]["sim"] == pytest.approx(1.0, abs=0.1)  # one prediction for all
    assert got["trail-oracle"]["engine"] is None  # not run on the engine


def test_a_folder_without_the_traced_cell_is_a_clear_error(tmp_path: Path):
    Cells(tmp_path / "cells").put(0, 2.5, "fcfs", _cell([10, 20], [10.0, 20.0]))
    with pytest.raises(SystemExit, match="no seed has both"):
        simulate_variants(tmp_path, 2.5, "trail-oracle")


def test_the_replays_batch_size_is_used(tmp_path: Path):
    """With as many slots as requests nothing waits, so exact lengths have nothing to reorder."""
    import json

    lengths = [400] * 16 + [10] * 48
    cells = Cells(tmp_path / "cells")
    for label in ("fcfs", "trail"):
        cells.put(0, 2.5, label, _cell(lengths, [100.0] * 64))
    (tmp_path / "experiment.json").write_text(json.dumps({"meta": {"max_num_seqs": 64}}))
    got = simulate_variants(tmp_path, 2.5, "trail-oracle")
    assert got["trail-oracle"]["sim"] == pytest.approx(1.0, abs=0.05)
