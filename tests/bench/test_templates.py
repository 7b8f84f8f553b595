"""`trail bench online --template`: one application's template around the shifted traffic."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from trail.bench.cli import app
from trail.bench.online import apply_template


def test_the_template_wraps_the_prompt_and_reads_a_typed_newline():
    wrapped = apply_template("Reply in one short sentence.\\n\\n{prompt}", "what about X?")
    assert wrapped == "Reply in one short sentence.\n\nwhat about X?"
    assert apply_template("{prompt}", "a \\n stays") == "a \\n stays"


def test_a_template_without_the_placeholder_is_refused_before_any_work(tmp_path: Path):
    out = tmp_path / "online"
    res = CliRunner().invoke(app, ["online", "--template", "Be brief.", "--out", str(out)])
    assert res.exit_code == 2 and "{prompt}" in res.output
    assert not out.exists()
