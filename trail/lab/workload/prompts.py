"""Workloads: prompts with their natural output lengths, replayed with ignore_eos + max_tokens
so that every policy does identical work (the paper's release does the same)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class WorkItem:
    prompt: str
    out_tokens: int | None  # natural greedy length; None: measured by the experiment's FCFS run


def load_jsonl(path: Path) -> list[WorkItem]:
    items = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            n = row.get("out_tokens")
            items.append(WorkItem(str(row["prompt"]), None if n is None else int(n)))
    if not items:
        raise ValueError(f"{path}: no workload rows (want JSON lines with prompt[, out_tokens])")
    return items


def apply_template(template: str, prompt: str) -> str:
    """`template` with the prompt in place of `{prompt}`; a literal `\\n` in the template is a
    newline (as typed on a command line), one in the prompt stays as the user wrote it."""
    return template.replace("\\n", "\n").replace("{prompt}", prompt)


def templated(items: list[WorkItem], template: str) -> list[WorkItem]:
    """One application's wrapper around every prompt; known lengths belong to the bare prompts,
    so they are dropped (the experiment's FCFS run measures the new ones)."""
    if "{prompt}" not in template:
        raise ValueError("a template must contain {prompt}")
    if template == "{prompt}":
        return items
    return [WorkItem(apply_template(template, w.prompt), None) for w in items]


def capped(items: list[WorkItem], cap: int) -> list[WorkItem]:
    """Known lengths above `cap` cut to it: with max_tokens = cap, an answer that would run
    longer (a looper) stops there."""
    return [
        WorkItem(w.prompt, min(w.out_tokens, cap)) if w.out_tokens is not None else w for w in items
    ]


def sample(items: list[WorkItem], n: int, seed: int, max_out: int | None = None) -> list[WorkItem]:
    rng = np.random.default_rng(seed)
    pool = [w for w in items if max_out is None or (w.out_tokens or 0) <= max_out]
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in idx]


def from_profile(
    profile_dir: Path, splits: tuple[str, ...] = ("test", "val", "train")
) -> list[WorkItem]:
    """Prompts with the natural greedy lengths that `trail profile` measured."""
    items = []
    for shard in sorted(profile_dir.glob("shard_*.json")):
        for row in json.loads(shard.read_text()):
            if row.get("split") in splits:
                items.append(WorkItem(str(row["text"]), int(row["length"])))
    return items


def held_out(tokenizer, n: int, seed: int = 0, tail: int = 3000) -> list[WorkItem]:  # noqa: ANN001
    """Benchmark prompts no predictor trains on: test-split prompts from the last `tail` of the
    profile's seeded order (the profile reaches them last, and even then they are test rows)."""
    from trail.lab.workload.sharegpt import load_prompts

    prompts = load_prompts(tokenizer, seed)
    pool = [p for p in prompts[-tail:] if p.split == "test"]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} held-out test prompts in the last {tail}; ask fewer")
    return [WorkItem(p.text, None) for p in pool[:n]]


def save_jsonl(items: list[WorkItem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": w.prompt,
                    **({} if w.out_tokens is None else {"out_tokens": w.out_tokens}),
                }
            )
            + "\n"
            for w in items
        )
    )
