"""Per-step overhead of TRAIL (layer-k capture + probe + refinement) vs plain FCFS.

Steady decode of B identical-length requests that arrive together; the decode step time is
(finish - first token) / (tokens - 1), averaged over requests, for each batch size B.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def decode_step_seconds(result: dict) -> float:
    per = [
        (r["finish_s"] - r["first_token_s"]) / max(len(r["token_ids"]) - 1, 1)
        for r in result.values()
    ]
    return float(np.mean(per))


def measure(
    engine: dict,
    prompt_ids: list[int],
    batches: list[int],
    tokens: int,
    trail: dict | None,
    workdir: Path,
) -> dict[int, float]:
    from trail.engine.run_scenario import run_in_subprocess

    spec_engine = dict(engine, max_num_seqs=max(batches), trail=trail)
    phases = [
        [
            {
                "id": f"b{b}-{i}",
                "prompt_ids": prompt_ids,
                "params": {"max_tokens": tokens, "ignore_eos": True},
            }
            for i in range(b)
        ]
        for b in [1, *batches]  # the first phase warms the engine up
    ]
    res = run_in_subprocess({"engine": spec_engine, "phases": phases}, workdir)
    return {
        b: decode_step_seconds({k: v for k, v in res.items() if k.startswith(f"b{b}-")})
        for b in batches
    }
