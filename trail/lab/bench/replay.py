"""Engine-level replay: one workload into one fresh engine per policy (trail/lab/bench/experiment.py
runs the grid of loads, policies and seeds over it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trail.lab.stats.summary import summarize
from trail.lab.workload.prompts import WorkItem


def build_arrivals(
    items: list[WorkItem],
    tokenizer: Any,
    times: Sequence[float],
    initial: list | None,
    lengths: Sequence[int] | None = None,
    cap: int = 512,
) -> list[dict]:
    """Engine arrivals. With `lengths`: ignore_eos + max_tokens = length (identical work for
    every policy; `use_max_tokens: false` so only the oracle may rank by it). Without: natural
    greedy answers up to `cap` (the run that measures the lengths)."""
    from trail.models.chat import chat_prompt_ids

    arrivals = []
    for i, (w, t) in enumerate(zip(items, times, strict=True)):
        extra: dict[str, Any] = {"use_max_tokens": False}
        if initial is not None:
            extra["initial_dist"] = [float(x) for x in initial[i]]
        if lengths is None:
            params: dict[str, Any] = {"max_tokens": cap}
        else:
            params = {"max_tokens": int(lengths[i]), "ignore_eos": True}
        arrivals.append(
            {
                "id": f"q{i}",
                "prompt_ids": chat_prompt_ids(tokenizer, w.prompt),
                "params": {**params, "extra_args": {"trail": extra}},
                "at_time": float(t),
            }
        )
    return arrivals


def run_policy(
    engine: dict,
    policy: str,
    arrivals: list[dict],
    workdir: Path,
    trail_extra: dict,
    label: str | None = None,
) -> dict:
    """One fresh engine under one policy; latency summary plus preemptions by reason and the
    tokens they left to recompute (from the scheduler's event log)."""
    from trail.engine.run_scenario import run_in_subprocess

    folder = workdir / (label or policy)
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "events.jsonl"
    dump.unlink(missing_ok=True)
    spec_engine = dict(engine, trail={"policy": policy, "dump_path": str(dump), **trail_extra})
    res = run_in_subprocess({"engine": spec_engine, "phases": [arrivals]}, folder)
    lat = [r["latency_s"] for r in res.values()]
    ttft = [r["ttft_s"] for r in res.values()]
    tokens = sum(len(r["token_ids"]) for r in res.values())
    span = max(r["finish_s"] for r in res.values()) - min(r["arrival_s"] for r in res.values())
    summary = summarize(lat, ttft, tokens, span)
    events = read_events(dump)
    summary.update(preemption_counts(events))
    prompt_tokens = {a["id"]: len(a["prompt_ids"]) for a in arrivals}
    for rid, r in res.items():
        r["length"] = len(r.pop("token_ids"))  # the text is not needed, its length is
        r["preemptions"] = 0
        r["prompt_tokens"] = prompt_tokens[rid]
    for e in events:
        if e.get("event") == "preempted" and e.get("reason") != "park":
            res[_base_id(e["id"])]["preemptions"] += 1
    for rid, points in refined_points(events).items():
        res[rid]["refined"] = points
    for rid, rank in admitted_ranks(events).items():
        res[rid]["admitted_rank"] = rank
    steps = [e for e in events if e.get("event") == "step"]
    return {"summary": summary, "requests": res, "steps": steps}


def refined_points(events: list[dict]) -> dict[str, list[list[float]]]:
    """Per request, [generated count, expected remaining] at each probe output that moved the
    posterior (a recompute after a preemption repeats steps; the first output counts), so the
    simulator can replay the predictions the scheduler really held."""
    out: dict[str, list[list[float]]] = {}
    for e in events:
        if e.get("event") != "probe" or e.get("expected") is None:
            continue
        points = out.setdefault(_base_id(e["id"]), [])
        if not points or e["at"] > points[-1][0]:
            points.append([int(e["at"]), float(e["expected"])])
    return out


def admitted_ranks(events: list[dict]) -> dict[str, float]:
    """The rank each request had when it was first admitted to decode (a lane admission only
    prefills): the waiting queue's order, scored against the true lengths by `analysis`."""
    ranks: dict[str, float] = {}
    for e in events:
        if e.get("event") == "admitted" and not e.get("lane"):
            ranks.setdefault(_base_id(e["id"]), float(e["rank"]))
    return ranks


def read_events(dump: Path) -> list[dict]:
    if not dump.exists():
        return []
    return [json.loads(line) for line in dump.read_text().splitlines() if line.strip()]


def _base_id(engine_request_id: str) -> str:
    """vLLM appends '-xxxxxxxx' to request ids inside the engine."""
    return engine_request_id.rsplit("-", 1)[0]


def preemption_counts(events: list[dict]) -> dict[str, Any]:
    by_reason: dict[str, int] = {}
    recompute = 0
    for e in events:
        if e.get("event") == "preempted":
            by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
            recompute += int(e.get("recompute", 0))
    parks = by_reason.get("park", 0)  # the ranking lane's: not preemptions
    return {
        "preemptions": sum(by_reason.values()) - parks,
        "parks": parks,
        "preemptions_by_reason": by_reason,
        "recomputed_tokens": recompute,
    }


def measure_lengths(
    items: list[WorkItem], cap: int, workdir: Path, model: str | None = None
) -> list[WorkItem]:
    """Natural greedy lengths (up to `cap`) of every prompt, all sent at once to one FCFS
    engine; the replay then forces each to its length, so every policy does the same work."""
    from transformers import AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.engine.run_scenario import run_in_subprocess

    cfg = EngineConfig(**({"model": model} if model else {}))
    tok = AutoTokenizer.from_pretrained(cfg.model)
    arrivals = build_arrivals(items, tok, [0.0] * len(items), None, cap=cap)
    engine = dict(cfg.model_dump(exclude={"trail"}), trail={"policy": "fcfs"})
    res = run_in_subprocess({"engine": engine, "phases": [arrivals]}, workdir)
    return [WorkItem(w.prompt, len(res[f"q{i}"]["token_ids"])) for i, w in enumerate(items)]
