"""`trail inspect` against a real redis-server, mounted the way trail/cli/__init__.py will mount it."""

from __future__ import annotations

import time

import typer
from typer.testing import CliRunner

from trail.cli.inspect import app as inspect_app
from trail.store import PredictionStore, prompt_hash

root = typer.Typer()
root.add_typer(inspect_app, name="inspect")


@root.command("noop")
def _noop() -> None:  # a second command keeps `root` a group, as in trail/cli/__init__.py
    pass


runner = CliRunner()


def _seed(url: str) -> None:
    store = PredictionStore(url, flush_interval_s=0.01)
    try:
        for n, rid in enumerate(["r1-0000aaaa", "r2-0000bbbb"]):
            store.arrival(
                rid,
                replica="a",
                policy="trail",
                prompt_tokens=5,
                prompt_hash=prompt_hash("x"),
                initial_dist=None,
                initial_expected=30.0,
                ts=time.time(),
            )
            for step in range(1, 21):
                store.step(rid, step=step, expected_remaining=25.0 - step)
            store.finished(rid, true_length=20 + n, finish_reason="stop", ts=time.time() + n)
        assert store.flush(5.0)
    finally:
        store.close()


def test_inspect_prints_trajectory_and_saves_png(redis_srv, tmp_path):
    _seed(redis_srv.url)
    png = tmp_path / "traj.png"
    result = runner.invoke(
        root, ["inspect", "r1", "--png", str(png), "--redis-url", redis_srv.url], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "r1-0000aaaa" in result.output and "trajectory: 20 points" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_inspect_recent_summarises_accuracy(redis_srv):
    _seed(redis_srv.url)
    result = runner.invoke(
        root, ["inspect", "--recent", "5"], env={"REDIS_URL": redis_srv.url, "COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "trail" in line)
    # initial MAE = (|30-20| + |30-21|)/2 = 9.5; refined = mean |25-s - (L-s)| = (5 + 4)/2 = 4.5
    assert "9.5" in row and "4.5" in row


def test_inspect_unknown_id_and_missing_url_fail(redis_srv):
    assert runner.invoke(root, ["inspect", "nope", "--redis-url", redis_srv.url]).exit_code == 1
    assert runner.invoke(root, ["inspect", "nope"], env={"REDIS_URL": ""}).exit_code == 2
