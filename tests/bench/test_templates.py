"""One application's prompt template around a workload: `trail bench online --template` and
`trail bench workload --template --measure`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trail.cli.bench import app
from trail.lab.workload.prompts import WorkItem, apply_template, load_jsonl, templated


def test_the_template_wraps_the_prompt_and_reads_a_typed_newline():
    wrapped = apply_template("Reply in one short sentence.\\n\\n{prompt}", "what about X?")
    assert wrapped == "Reply in one short sentence.\n\nwhat about X?"
    assert apply_template("{prompt}", "a \\n stays") == "a \\n stays"


def test_a_template_drops_the_lengths_of_the_bare_prompts():
    items = [WorkItem("a", 300), WorkItem("b", None)]
    assert templated(items, "{prompt}") == items
    assert templated(items, "Be brief. {prompt}") == [
        WorkItem("Be brief. a", None),
        WorkItem("Be brief. b", None),
    ]
    with pytest.raises(ValueError, match="prompt"):
        templated(items, "Be brief.")


def test_a_template_without_the_placeholder_is_refused_before_any_work(tmp_path: Path):
    out = tmp_path / "online"
    res = CliRunner().invoke(app, ["online", "--template", "Be brief.", "--out", str(out)])
    assert res.exit_code == 2 and "{prompt}" in res.output
    assert not out.exists()
    res = CliRunner().invoke(app, ["workload", "--template", "Be brief.", "--out", str(out)])
    assert res.exit_code == 2 and "{prompt}" in res.output


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_workload_measures_the_natural_lengths_of_templated_prompts(tiny_path, tmp_path: Path):
    """The written file holds the wrapped prompts with lengths the replay can use at once."""
    source = tmp_path / "bare.jsonl"
    texts = ["Say hi.", "Count to ten.", "Name a fruit."]
    source.write_text("".join(json.dumps({"prompt": t, "out_tokens": 400}) + "\n" for t in texts))
    out = tmp_path / "brief.jsonl"
    args = ["workload", "--from", str(source), "--template", "Be brief.\\n{prompt}"]
    args += ["--measure", "--cap", "12", "--model", str(tiny_path), "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    items = load_jsonl(out)
    assert [w.prompt for w in items] == [f"Be brief.\n{t}" for t in texts]
    assert all(w.out_tokens is not None and 1 <= w.out_tokens <= 12 for w in items)
    assert "at the cap" in res.output
