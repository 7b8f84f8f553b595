"""`trail bench burst` (the last step of `make run`): the verdict's wording, and the command
end to end on a scripted engine (no vLLM): table, verdicts, CDF, no goal lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from trail.lab.bench.burst import speed_warning, verdict
from trail.lab.bench.replay_print import print_report


def ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high}


@pytest.mark.parametrize(
    ("ratio", "said"),
    [
        (ci(1.6, 1.3, 1.9), "trail: mean latency 1.60× lower than FCFS [1.30, 1.90]"),
        (
            ci(1.1, 0.9, 1.3),
            "trail: mean latency 1.10× lower than FCFS [0.90, 1.30] - within noise on this burst",
        ),
        (ci(0.5, 0.4, 0.8), "trail: mean latency 2.00× higher than FCFS [1.25, 2.50]"),
        (
            ci(0.8, 0.5, 1.25),
            "trail: mean latency 1.25× higher than FCFS [0.80, 2.00] - within noise on this burst",
        ),
        (ci(float("nan"), 1.0, 2.0), "trail: no comparison (the ratio is undefined)"),
    ],
)
def test_verdict_reads_the_ratio_and_its_interval(ratio: dict, said: str) -> None:
    assert verdict("trail", ratio) == said


def test_an_interval_that_touches_1_is_noise() -> None:
    assert verdict("x", ci(1.4, 1.0, 1.9)).endswith("within noise on this burst")


def test_a_machine_that_slowed_during_one_run_is_called_out() -> None:
    assert speed_warning({"fcfs": 30.0, "trail": 32.0, "trail-oracle": 28.5}) is None
    said = speed_warning({"fcfs": 130.0, "trail": 32.0, "trail-oracle": 30.0})
    assert said is not None and "busy 130 s under fcfs but 30 s under trail-oracle" in said
    assert speed_warning({"fcfs": 30.0}) is None


def test_replay_prints_the_projects_goals_only_when_asked() -> None:
    goal = {"goal": "FCFS/TRAIL mean latency", "target": 2.0, "value": 1.2, "met": False}
    report = {"table": {}, "goals": [goal]}
    for asked in (False, True):
        console = Console(record=True, width=100)
        print_report(console, report, goals=asked)
        assert ("MISSED" in console.export_text()) is asked


def scripted_cell(items, times, lengths, policy, extra, label, folder) -> dict:  # noqa: ANN001
    """FCFS latencies 2 s apart; TRAIL+ exactly half; trail a paired coin flip around FCFS."""
    from trail.lab.stats.summary import summarize

    n = len(items)
    fcfs = 2.0 * np.arange(1, n + 1)
    rng = np.random.default_rng(1)
    lat = {"fcfs": fcfs, "trail-oracle": fcfs / 2, "trail": fcfs * rng.uniform(0.5, 1.5, n)}[policy]
    reqs = {
        f"q{i}": {"latency_s": x, "ttft_s": x / 2, "tpot_s": 0.1, "max_stall_s": 0.1, "length": k}
        for i, (x, k) in enumerate(zip(lat, lengths or [5] * n, strict=True))
    }
    summary = summarize(lat, lat / 2, 10 * n, float(lat.max()))
    summary |= {"preemptions": 0, "preemptions_by_reason": {}, "recomputed_tokens": 0}
    busy = 0.1 if policy == "trail" else 0.02  # the machine slowed down during `trail`
    step = {"event": "step", "prefill_tokens": 0, "decode_seqs": 1, "step_s": busy}
    return {"requests": reqs, "summary": summary, "steps": [step] * 100}


def test_burst_command_prints_verdicts_and_the_cdf_without_goals(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import transformers

    from trail.cli.bench import app
    from trail.lab.bench import experiment

    sent: list = []  # the lengths each run was given

    def run(*cell):  # noqa: ANN002, ANN202
        sent.append(cell[2])
        return scripted_cell(*cell)

    monkeypatch.setattr(experiment, "engine_runner", lambda *a: run)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    work = tmp_path / "w.jsonl"
    rows = [{"prompt": f"p{i}", "out_tokens": 900 if i % 5 == 0 else 20} for i in range(30)]
    work.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "burst"
    args = ["burst", "--workload", str(work), "--n", "12", "--cap", "64", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    assert "trail-oracle: mean latency 2.00× lower than FCFS [2.00, 2.00]" in text
    assert "within noise on this burst" in text
    assert "goal" not in text.lower() and "MISSED" not in text
    assert "engine busy 10 s under trail but 2 s under fcfs" in text
    png = out / "latency_cdf.png"
    assert png.stat().st_size > 0 and str(png) in "".join(res.output.split())  # folded
    assert "where to go next" in text and "trail doctor" in text
    table = json.loads((out / "burst.json").read_text())["table"]["inf"]
    assert set(table) == {"fcfs", "trail", "trail-oracle"}
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]  # the same work for each policy
    assert max(sent[0]) == 64 and min(sent[0]) == 20  # the loopers cut to the cap
