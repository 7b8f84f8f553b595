"""Profile the served model: natural output lengths (greedy, EOS or cap) and hidden states.

Per shard: vLLM generates the answers (batched), then one teacher-forced transformers pass per
request gives every layer's residual stream at the prefill mean and at sampled decode steps.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trail.predict.hidden import capture, load_teacher, sample_steps
from trail.predict.shards import read_manifest, write_manifest, write_shard
from trail.predict.sharegpt import Prompt, load_prompts


@dataclass(frozen=True)
class ProfileSettings:
    """Everything that changes the data; a resumed run must match the manifest's copy."""

    model: str
    cap: int = 512
    seed: int = 0
    max_prompt_tokens: int = 512
    positions: int = 16
    test_stride: int = 16
    repetition_penalty: float = 1.0
    shard_size: int = 200
    dtype: str = "float32"


def repeat_ratio(ids: list[int], window: int = 256) -> float:
    """Unique 4-grams / 4-grams over the tail: ~0.1 means a repetition loop."""
    tail = ids[-window:]
    grams = [tuple(tail[i : i + 4]) for i in range(len(tail) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def make_llm(model: str, max_num_seqs: int, dtype: str):  # noqa: ANN201 - vllm.LLM
    """Offline engine; fp32 by default: on AVX2-only CPUs bf16 matmuls run ~8x slower."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm import LLM

    return LLM(
        model=model,
        dtype=dtype,
        enforce_eager=True,
        max_model_len=1536,
        max_num_seqs=max_num_seqs,
        seed=0,
    )


def generate(llm, tokenizer, prompts: list[Prompt], s: ProfileSettings) -> list[dict]:  # noqa: ANN001
    """Greedy answers; the length is len(token_ids) as vLLM reports it (EOS included)."""
    from vllm import SamplingParams, TokensPrompt

    from trail.models.chat import chat_prompt_ids

    ids = [chat_prompt_ids(tokenizer, p.text) for p in prompts]
    params = SamplingParams(
        temperature=0.0, max_tokens=s.cap, repetition_penalty=s.repetition_penalty
    )
    outs = llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], params, use_tqdm=True)
    rows = []
    for p, pid, out in zip(prompts, ids, outs, strict=True):
        gen = out.outputs[0]
        toks = list(gen.token_ids)
        rows.append(
            {
                **asdict(p),
                "n_prompt": len(pid),
                "prompt_ids": pid,
                "output_ids": toks,
                "length": len(toks),
                "finish": gen.finish_reason,
                "repeat_ratio": round(repeat_ratio(toks), 4),
            }
        )
    return rows


def capture_shard(teacher, rows: list[dict], s: ProfileSettings, shard: int) -> dict:  # noqa: ANN001
    """Stack every request's captured rows into one shard's arrays."""
    rng = np.random.default_rng([s.seed, shard])
    parts: dict[str, list] = {"req": [], "steps": [], "labels": [], "vectors": []}
    for j, r in enumerate(tqdm(rows, desc=f"hidden states shard {shard}", unit="req")):
        steps = sample_steps(r["length"], r["split"], rng, s.positions, s.test_stride)
        c = capture(teacher, r["prompt_ids"], r["output_ids"], steps)
        parts["req"].append(np.full(len(c.steps), j))
        parts["steps"].append(c.steps)
        parts["labels"].append(c.labels)
        parts["vectors"].append(c.vectors)
    return {k: np.concatenate(v) for k, v in parts.items()}


def open_manifest(root: Path, s: ProfileSettings) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root) or {"settings": asdict(s), "done": [], "seconds": {}}
    if manifest["settings"] != asdict(s):
        raise ValueError(f"{root} holds a profile with other settings: {manifest['settings']}")
    return manifest


def run_profile(
    root: Path, s: ProfileSettings, limit: int | None, budget_min: float, max_num_seqs: int
) -> dict:
    """Profile shard by shard; finished shards are skipped; stops after the time budget."""
    import torch
    from transformers import AutoTokenizer

    manifest = open_manifest(root, s)
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    prompts = load_prompts(tokenizer, s.seed, max_tokens=s.max_prompt_tokens, limit=limit)
    shards = [prompts[i : i + s.shard_size] for i in range(0, len(prompts), s.shard_size)]
    todo = [i for i in range(len(shards)) if i not in manifest["done"]]
    start = time.monotonic()
    llm = make_llm(s.model, max_num_seqs, s.dtype) if todo else None
    teacher = load_teacher(s.model) if todo else None
    torch.set_num_threads(1)  # the other core is vLLM's: generation overlaps capture

    def over_budget() -> bool:
        return (time.monotonic() - start) / 60 > budget_min

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(timed, generate, llm, tokenizer, shards[todo[0]], s) if todo else None
        for n, i in enumerate(todo):
            rows, gen_s = pending.result()
            nxt = todo[n + 1] if n + 1 < len(todo) else None
            pending = None
            if nxt is not None and not over_budget():
                pending = pool.submit(timed, generate, llm, tokenizer, shards[nxt], s)
            t1 = time.monotonic()
            write_shard(root, i, rows, capture_shard(teacher, rows, s, i))
            manifest["done"].append(i)
            manifest["seconds"][str(i)] = {"generate": gen_s, "hidden": time.monotonic() - t1}
            write_manifest(root, manifest)
            if pending is None:
                break
    if len(manifest["done"]) < len(shards):
        print(f"stopped after the {budget_min} min budget; rerun to resume")
    return manifest


def timed(fn, *args):  # noqa: ANN001, ANN002, ANN201
    t0 = time.monotonic()
    return fn(*args), time.monotonic() - t0
