"""`trail bench load` end to end against a scripted server: JSONL + summary files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.sse import chat_events, sse, transport
from trail.cli.bench import app


def test_load_command_writes_records_and_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    seen: list = []
    t = transport(sse(*chat_events(3)), seen=seen)
    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=t, **kw))
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "out_tokens": 3}) + "\n" for i in range(4))
    )
    out = tmp_path / "load.jsonl"
    args = ["load", "--url", "http://x", "--requests", str(trace), "--n", "4", "--rate", "inf"]
    res = CliRunner().invoke(app, [*args, "--slo-ttft", "5", "--true-len", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 and all(r["ok"] and r["out_tokens"] == 3 for r in rows)
    summary = json.loads(out.with_suffix(".summary.json").read_text())["summary"]
    assert summary["completed"] == 4 and summary["slo_attainment"] == 1.0
    assert all(b["ignore_eos"] and b["vllm_xargs"]["trail_true_len"] == 3 for b in seen)
