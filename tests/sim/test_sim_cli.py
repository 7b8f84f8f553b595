"""The `trail sim` commands run end to end on tiny settings and write what they promise."""

import json

import pytest
from typer.testing import CliRunner

from trail.cli.sim import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "sweep-c", "routers", "scale", "theory", "calibrate"):
        assert command in result.output


def test_theory_prints_every_c():
    result = runner.invoke(app, ["theory", "--dist", "exp:10", "--load", "0.5", "--c", "0,inf"])
    assert result.exit_code == 0
    assert "c=0 " in result.output and "c=inf" in result.output


def test_validate_writes_json_table_and_plot(tmp_path):
    args = [
        "validate",
        "--dist",
        "exp:10",
        "--loads",
        "0.5",
        "--jobs",
        "60000",
        "--tolerance",
        "0.05",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--plots", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "validate.json").read_text())
    assert len(rows) == 5 and all(r["rel_err"] < 0.05 for r in rows)
    assert (tmp_path / "sim_validate.png").stat().st_size > 10_000
    assert (tmp_path / "validate.md").read_text().count("\n") == 7


def test_validate_fails_when_tolerance_is_impossible(tmp_path):
    args = ["validate", "--dist", "exp:10", "--loads", "0.9", "--jobs", "20000", "--tolerance", "0"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--plots", str(tmp_path)])
    assert result.exit_code == 1


def test_sweep_c_and_routers_write_results(tmp_path):
    common = ["--out", str(tmp_path), "--plots", str(tmp_path)]
    sweep = runner.invoke(
        app, ["sweep-c", "--kv", "4096", "--c", "0,inf", "--requests", "150", "--tag", "t", *common]
    )
    assert sweep.exit_code == 0, sweep.output
    assert len(json.loads((tmp_path / "sweep_c_t.json").read_text())["rows"]) == 2
    assert (tmp_path / "sim_sweep_c_t.png").exists()
    names = "round-robin,power-of-two,least-work,slots"
    args = ["routers", "--replicas", "1,2", "--per-engine", "60", "--routers", names]
    routers = runner.invoke(app, [*args, "--ingress", "2", "--stats-period", "0.2", *common])
    assert routers.exit_code == 0, routers.output
    rows = json.loads((tmp_path / "routers.json").read_text())
    assert {(r["replicas"], r["router"]) for r in rows} == {
        (n, r) for n in (1, 2) for r in names.split(",")
    }
    assert all(r["ingress"] == 2 and r["stats_period_s"] == 0.2 for r in rows)
    assert (tmp_path / "sim_routers.png").exists()


def test_calibrate_saves_a_usable_cost_model(tmp_path):
    trace = tmp_path / "steps.jsonl"
    rows = [
        {
            "prefill_tokens": p,
            "decode_seqs": s,
            "context_tokens": c,
            "step_s": 0.01 + 2e-4 * p + 3e-3 * s + 1e-6 * c,
        }
        for p in (0, 100, 500)
        for s in (1, 8, 16)
        for c in (500, 5000)
    ]
    trace.write_text("\n".join(json.dumps(r) for r in rows))
    saved = tmp_path / "cost.json"
    result = runner.invoke(app, ["calibrate", str(trace), "--save", str(saved)])
    assert result.exit_code == 0, result.output
    fitted = json.loads(saved.read_text())
    assert abs(fitted["per_decode_seq_s"] - 3e-3) < 3e-4
    sweep = runner.invoke(
        app,
        [
            "sweep-c",
            "--kv",
            "4096",
            "--c",
            "0",
            "--requests",
            "100",
            "--cost",
            str(saved),
            "--out",
            str(tmp_path),
            "--plots",
            str(tmp_path),
        ],
    )
    assert sweep.exit_code == 0, sweep.output


def test_cost_files_of_the_older_a_b_d_e_form_still_load(tmp_path):
    """Cost models saved before the simulator shared the scheduler's StepCost keep working."""
    from trail.lab.sim.calibrate import load_cost

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"a": 0.01, "b": 2e-4, "d": 3e-3, "e": 1e-6}))
    cost = load_cost(str(old))
    assert (cost.base_s, cost.per_prefill_token_s) == (0.01, 2e-4)
    assert cost.step_seconds(10, 2, 100) == pytest.approx(0.01 + 2e-3 + 6e-3 + 1e-4)
