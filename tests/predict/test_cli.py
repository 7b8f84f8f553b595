"""The three Typer apps parse and describe their options (the lead wires them into `trail`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trail.cli.eval import app as eval_app
from trail.cli.profile import app as profile_app
from trail.cli.train import app as train_app


@pytest.mark.parametrize(
    ("app", "args", "needle"),
    [
        (profile_app, ["--help"], "--limit"),
        (train_app, ["probe", "--help"], "--layer"),
        (train_app, ["prompt", "--help"], "--lr"),
        (eval_app, ["--help"], "--shipped"),
    ],
)
def test_help(app, args: list[str], needle: str) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert needle in result.output


def test_train_without_profile_fails_clearly(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(train_app, ["probe", "--layer", "3", "--profile", str(tmp_path)])
    assert result.exit_code != 0
    assert "trail profile" in str(result.exception)
