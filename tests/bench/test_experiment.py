"""The experiment's arithmetic: paired bootstrap intervals, length buckets, the stall metric,
and the simulator's calibration from an engine step trace."""

from __future__ import annotations

import numpy as np
import pytest

from trail.engine.stepper import Finished, _Live
from trail.lab.bench.sim_check import calibrated_cost
from trail.lab.stats.intervals import bucket_of, by_bucket, pooled_ratio, ratio_interval
from trail.policy.cost import StepCost


def test_a_paired_constant_ratio_has_a_zero_width_interval() -> None:
    rng = np.random.default_rng(0)
    other = {s: rng.exponential(5.0, 50) for s in range(3)}
    base = {s: 2.0 * v for s, v in other.items()}
    r = ratio_interval(base, other)
    assert r.value == pytest.approx(2.0) and r.low == pytest.approx(2.0)
    assert r.high == pytest.approx(2.0)


def test_the_interval_covers_the_true_ratio_and_narrows_with_more_requests() -> None:
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[dict, dict]:
        other = {s: rng.exponential(4.0, n) for s in range(3)}
        base = {s: rng.exponential(6.0, n) for s in range(3)}  # true ratio 1.5
        return base, other

    small, large = ratio_interval(*draw(40)), ratio_interval(*draw(2000))
    assert small.low < 1.5 < small.high and large.low < 1.5 < large.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_p99_ratio_and_pooled_point_estimate() -> None:
    base, other = {0: np.arange(1, 101.0)}, {0: np.full(100, 10.0)}
    assert pooled_ratio(base, other) == pytest.approx(50.5 / 10)
    from trail.lab.stats.intervals import STATS

    assert ratio_interval(base, other, STATS["p99"]).value == pytest.approx(
        np.percentile(np.arange(1, 101.0), 99) / 10
    )


def test_mismatched_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="same, non-empty requests"):
        ratio_interval({0: [1.0, 2.0]}, {0: [1.0]})


def test_length_buckets() -> None:
    lengths = [1, 127, 128, 383, 384, 512]
    assert list(bucket_of(lengths)) == ["short", "short", "medium", "medium", "long", "long"]
    got = by_bucket([1, 2, 3, 4, 5, 6], lengths)
    assert {k: list(v) for k, v in got.items()} == {
        "short": [1, 2],
        "medium": [3, 4],
        "long": [5, 6],
    }


def test_the_longest_stall_after_the_first_token_is_kept() -> None:
    live = _Live(arrival_s=0.0)
    for tokens, now in [(0, 0.5), (1, 1.0), (2, 1.1), (2, 1.5), (3, 4.0), (4, 4.1)]:
        live.saw(tokens, now)
    assert live.max_stall_s == pytest.approx(2.9)  # the gap from 1.1 to 4.0: a preemption
    done = Finished("r", [1, 2, 3, 4], 0.0, 1.0, 4.1, 1, 6, max_stall_s=live.max_stall_s)
    assert done.tpot_s == pytest.approx(3.1 / 3)


def test_calibration_recovers_a_known_cost_model() -> None:
    truth = StepCost(0.02, 4e-4, 3e-3, 2e-6)
    rng = np.random.default_rng(2)
    steps = []
    for _ in range(400):
        p, d, c = int(rng.integers(0, 300)), int(rng.integers(1, 16)), int(rng.integers(0, 8000))
        t = truth.step_seconds(p, d, c) * (1 + 0.01 * rng.standard_normal())
        steps.append({"prefill_tokens": p, "decode_seqs": d, "context_tokens": c, "step_s": t})
    got = calibrated_cost([{"steps": steps[:200]}, {"steps": steps[200:]}])
    for name in ("base_s", "per_prefill_token_s", "per_decode_seq_s", "per_context_token_s"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=0.1), name


@pytest.mark.engine
@pytest.mark.timeout(900)
def test_tiny_experiment_end_to_end_and_resumable(tiny_path, tmp_path) -> None:
    """Two policies, one load, one seed on the tiny model: the FCFS run measures natural
    lengths, the oracle replays them exactly; the table, simulator check and PNGs are written;
    a rerun starts no engine."""
    import json

    from typer.testing import CliRunner

    from trail.cli.bench import app

    workload = tmp_path / "w.jsonl"
    texts = ["Say hi.", "Count to ten.", "Name a fruit.", "Tell a joke.", "Why?", "Go on."]
    workload.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "exp"
    args = ["replay", "--workload", str(workload), "--model", str(tiny_path), "--n", "6"]
    args += ["--loads", "2", "--seeds", "0", "--policies", "fcfs,trail-oracle", "--cap", "24"]
    args += ["--max-num-seqs", "2", "--saturation-rps", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "experiment.json").read_text())
    rows = report["table"]["2"]
    assert set(rows) == {"fcfs", "trail-oracle"} and rows["fcfs"]["requests"] == 6
    lengths = json.loads((out / "cells" / "natural_lengths.json").read_text())
    assert len(lengths) == 6 and all(1 <= v <= 24 for v in lengths.values())
    oracle = json.loads((out / "cells" / "seed0" / "load2" / "trail-oracle.json").read_text())
    assert sorted(r["length"] for r in oracle["requests"].values()) == sorted(lengths.values())
    assert oracle["steps"] and {"prefill_tokens", "decode_seqs", "step_s"} <= set(
        oracle["steps"][0]
    )
    assert rows["fcfs"]["fcfs_over"]["mean_latency"]["value"] == pytest.approx(1.0)
    assert set(report["sim_check"]["2"]["policies"]) == {"fcfs", "trail-oracle"}
    assert (out / "ratios_vs_load.png").stat().st_size > 0
    stamp = (out / "cells" / "seed0" / "load2" / "fcfs.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "cells" / "seed0" / "load2" / "fcfs.json").stat().st_mtime_ns == stamp


@pytest.mark.serve
@pytest.mark.timeout(900)
def test_tiny_experiment_over_http_with_a_router_per_policy(tiny_path, tmp_path) -> None:
    """The same harness through the Serve app (2 tiny replicas): FCFS measures natural lengths
    over HTTP, the oracle behind Ray's power-of-two replays them exactly, the cell names its
    router and replicas, and the report's reference column is the one asked for."""
    import json

    from typer.testing import CliRunner

    from trail.cli.bench import app

    workload = tmp_path / "w.jsonl"
    texts = ["Say hi.", "Count to ten.", "Name a fruit.", "Tell a joke.", "Why?", "Go on."]
    workload.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "http"
    args = ["replay", "--http", "--replicas", "2", "--workload", str(workload), "--n", "6"]
    args += ["--model", str(tiny_path), "--loads", "2", "--seeds", "0", "--cap", "16"]
    args += ["--policies", "fcfs,trail-oracle@router=pow2", "--reference", "fcfs"]
    args += ["--max-num-seqs", "2", "--saturation-rps", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "experiment.json").read_text())
    assert (
        report["meta"]["http"] == {"replicas": 2, "router": "trail"} and "sim_check" not in report
    )
    rows = report["table"]["2"]
    assert set(rows) == {"fcfs", "trail-oracle@router=pow2"}
    over = rows["trail-oracle@router=pow2"]["over_reference_mean_latency"]["value"]
    assert over == pytest.approx(
        1 / rows["trail-oracle@router=pow2"]["fcfs_over"]["mean_latency"]["value"], rel=0.2
    )
    lengths = json.loads((out / "cells" / "natural_lengths.json").read_text())
    assert len(lengths) == 6 and all(1 <= v <= 16 for v in lengths.values())
    cell = json.loads(
        (out / "cells" / "seed0" / "load2" / "trail-oracle_routerpow2.json").read_text()
    )
    assert cell["summary"]["router"] == "pow2" and cell["summary"]["n"] == 6
    reqs = cell["requests"].values()
    assert sorted(r["length"] for r in reqs) == sorted(lengths.values())
    assert all(r["replica"] and 0 < r["ttft_s"] <= r["latency_s"] for r in reqs)
    assert all(r["max_stall_s"] >= 0 for r in reqs)


def test_a_router_is_refused_without_http(tmp_path) -> None:
    from typer.testing import CliRunner

    from trail.cli.bench import app

    args = ["replay", "--policies", "fcfs,trail@router=pow2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--http" in result.output
    bad = CliRunner().invoke(app, ["replay", "--http", "--policies", "fcfs,trail@router=p3"])
    assert bad.exit_code == 2 and "p3" in bad.output


def test_saturation_is_the_full_batch_decode_rate_not_the_burst_span() -> None:
    """Full decode-only steps set the rate; ramp, prefill and tail steps do not."""
    from trail.lab.bench.experiment import full_batch_rate

    full = [{"decode_seqs": 8, "prefill_tokens": 0, "step_s": 0.08}] * 20
    ramp = [{"decode_seqs": k, "prefill_tokens": 0, "step_s": 0.05} for k in range(1, 8)]
    prefill = [{"decode_seqs": 8, "prefill_tokens": 300, "step_s": 0.5}] * 5
    rate = full_batch_rate(full + ramp + prefill, slots=8, engines=2)
    assert rate["tok_s"] == pytest.approx(2 * 8 / 0.08) and rate["full_batch_steps"] == 20
    with pytest.raises(RuntimeError, match="full-batch"):
        full_batch_rate(ramp + prefill, slots=8, engines=1)


def test_a_cells_speed_is_its_median_step_at_the_fullest_batch() -> None:
    from trail.lab.bench.analysis import full_batch_step_ms

    steps = [{"decode_seqs": 4, "prefill_tokens": 0, "step_s": s} for s in (0.07, 0.08, 0.09)]
    steps += [{"decode_seqs": 2, "prefill_tokens": 0, "step_s": 0.01}]
    steps += [{"decode_seqs": 4, "prefill_tokens": 50, "step_s": 1.0}]
    assert full_batch_step_ms({"steps": steps}) == pytest.approx(80.0)
    assert full_batch_step_ms({"steps": []}) is None


def test_a_probe_folder_goes_to_the_probe_policies_only(tmp_path) -> None:
    """`--probe DIR` (e.g. a probe retrained on an application's traffic) reaches the policies
    that read the probe, and only those."""
    from trail.lab.bench.policy_specs import parse_policy, with_probe

    names = ("fcfs", "sjf-prompt", "trail-prompt", "trail", "trail-oracle")
    specs = {s: with_probe(parse_policy(s, 0.8), tmp_path) for s in names}
    assert specs["trail"][2] == {"probe_path": str(tmp_path), "c": 0.8}
    for name in ("fcfs", "sjf-prompt", "trail-prompt", "trail-oracle"):
        assert "probe_path" not in specs[name][2], name
    assert with_probe(parse_policy("trail", 0.8), None)[2] == {"c": 0.8}


def test_time_to_the_second_token_sees_through_a_parked_first_token():
    """The ranking lane gives a parked request its first token at once; its answer starts at
    the second. One-token answers count to their end; old cells fall back to TTFT."""
    from trail.lab.bench.analysis import request_arrays

    base = {"arrival_s": 1.0, "finish_s": 9.0, "latency_s": 8.0, "ttft_s": 0.5}
    cell = {
        "requests": {
            "q0": {**base, "second_token_s": 7.0},  # parked after its first token
            "q1": {**base, "second_token_s": None},  # a one-token answer
            "q2": dict(base),  # recorded before second tokens were kept
        }
    }
    assert request_arrays(cell)["ttst_s"].tolist() == [6.0, 8.0, 0.5]


def test_waiting_tau_scores_the_rank_at_decode_admission():
    from trail.lab.bench.analysis import waiting_tau
    from trail.lab.bench.replay import admitted_ranks

    events = [
        {"event": "admitted", "id": "q0-ab", "rank": 90.0, "lane": True},  # lane: prefill only
        {"event": "admitted", "id": "q0-ab", "rank": 5.0, "lane": False},
        {"event": "admitted", "id": "q0-ab", "rank": 50.0, "lane": False},  # a resume: ignored
        {"event": "admitted", "id": "q1-cd", "rank": 20.0, "lane": False},
        {"event": "admitted", "id": "q2-ef", "rank": 30.0, "lane": False},
    ]
    ranks = admitted_ranks(events)
    assert ranks == {"q0": 5.0, "q1": 20.0, "q2": 30.0}
    lengths = {"q0": 3, "q1": 10, "q2": 40}
    cell = {"requests": {k: {"admitted_rank": v, "length": lengths[k]} for k, v in ranks.items()}}
    assert waiting_tau([cell]) == 1.0
    flat = {k: {"admitted_rank": 0.0, "length": n} for k, n in lengths.items()}
    assert waiting_tau([{"requests": flat}]) is None  # FCFS ranks nobody
