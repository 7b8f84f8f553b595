"""Profile the served model: natural output lengths (greedy, EOS or cap) and hidden states.

Per shard, vLLM generates the answers (batched) with the TRAIL model class, whose worker-side
capture sink (trail/engine/sink.py) writes the residual stream of a few candidate layers at the
rows the engine computes anyway: no second, teacher-forced pass (which cost as much as the
generation itself). Rows follow the engine's convention (hidden.py): step g is the row whose
logits sampled output token g, labelled with the remaining length L - g; g = 0 is the last
prompt token. Train requests keep `positions` random steps (as the release); val and test
requests keep every step ("dense"), so evaluation can replay refinement at the served cadence.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trail.predict.shards import read_manifest, write_manifest, write_shard
from trail.predict.sharegpt import Prompt, load_prompts

CANDIDATE_LAYERS = (6, 9, 12, 15, 17, 19, 21, 24, 27)  # of SmolLM2's 30; the sweep picks one


@dataclass(frozen=True)
class ProfileSettings:
    """Everything that changes the data; a resumed run must match the manifest's copy."""

    model: str
    cap: int = 512
    seed: int = 0
    max_prompt_tokens: int = 512
    positions: int = 32
    train_stride: int = 1  # train rows are drawn from the steps the sink kept (every Nth)
    repetition_penalty: float = 1.0
    shard_size: int = 256
    dtype: str = "float32"
    layers: tuple[int, ...] = CANDIDATE_LAYERS
    capture: str = "in-engine, last prompt token + decode rows"


def repeat_ratio(ids: list[int], window: int = 256) -> float:
    """Unique 4-grams / 4-grams over the tail: ~0.1 means a repetition loop."""
    tail = ids[-window:]
    grams = [tuple(tail[i : i + 4]) for i in range(len(tail) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def make_llm(s: ProfileSettings, max_num_seqs: int, sink: Path):  # noqa: ANN201 - vllm.LLM
    """Offline engine with the capture sink; fp32: on AVX2-only CPUs bf16 runs ~8x slower."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # else vLLM binds to one core
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from trail.engine.engine_config import force_v1_runner
    from trail.engine.overrides import TrailOverrides
    from trail.engine.trail_config import TrailConfig

    force_v1_runner()
    from vllm import LLM

    trail = TrailConfig(policy="fcfs", capture_layers=list(s.layers), capture_dir=str(sink))
    return LLM(
        model=s.model,
        dtype=s.dtype,
        enforce_eager=True,
        max_model_len=1536,
        max_num_seqs=max_num_seqs,
        seed=0,
        hf_overrides=TrailOverrides(trail),
    )


def generate(llm, tokenizer, prompts: list[Prompt], s: ProfileSettings, shard: int) -> list[dict]:  # noqa: ANN001
    """Greedy answers; the length is len(token_ids) as vLLM reports it (EOS included)."""
    from vllm import SamplingParams, TokensPrompt

    from trail.models.chat import chat_prompt_ids

    ids = [chat_prompt_ids(tokenizer, p.text) for p in prompts]
    params = [
        SamplingParams(
            temperature=0.0,
            max_tokens=s.cap,
            repetition_penalty=s.repetition_penalty,
            extra_args={"trail": {"capture_id": f"{shard}:{j}", "capture_every": every(p, s)}},
        )
        for j, p in enumerate(prompts)
    ]
    outs = llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], params, use_tqdm=True)
    rows = []
    for p, pid, out in zip(prompts, ids, outs, strict=True):
        toks = list(out.outputs[0].token_ids)
        rows.append(
            {
                **asdict(p),
                "n_prompt": len(pid),
                "prompt_ids": pid,
                "output_ids": toks,
                "length": len(toks),
                "finish": out.outputs[0].finish_reason,
                "repeat_ratio": round(repeat_ratio(toks), 4),
            }
        )
    return rows


def every(p: Prompt, s: ProfileSettings) -> int:
    return 1 if p.split in ("val", "test") else s.train_stride


def shard_arrays(captured: dict, rows: list[dict], s: ProfileSettings, shard: int) -> dict:
    """One shard's arrays from the sink's rows: sampled rows of every request (all requests:
    step 0 + `positions` random steps; val/test: the stride-16 grid as well) and, for val/test,
    every step ("dense")."""
    rng = np.random.default_rng([s.seed, shard])
    parts: dict[str, list] = {k: [] for k in ("req", "steps", "labels", "vectors")}
    dense: dict[str, list] = {k: [] for k in ("dense_req", "dense_steps", "dense_vectors")}
    for j, r in enumerate(rows):
        got = captured.get(f"{shard}:{j}", {})
        length = r["length"]
        have = np.array(sorted(g for g in got if g < length), dtype=np.int64)
        if len(have) == 0 or have[0] != 0:
            raise RuntimeError(f"shard {shard} request {j}: the sink holds no prompt row")
        steps = pick_steps(have, r["split"], rng, s.positions)
        parts["req"].append(np.full(len(steps), j))
        parts["steps"].append(steps)
        parts["labels"].append(length - steps)
        parts["vectors"].append(np.stack([got[int(g)] for g in steps]))
        if r["split"] in ("val", "test"):
            dense["dense_req"].append(np.full(len(have), j))
            dense["dense_steps"].append(have)
            dense["dense_vectors"].append(np.stack([got[int(g)] for g in have]))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out.update({k: np.concatenate(v) for k, v in dense.items() if v})
    return out


def pick_steps(have: np.ndarray, split: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Step 0 plus up to n random decode steps (train/val, as the release); test: the regular
    grid g = 1, 17, 33, ... that the layer sweep evaluates on."""
    decode = have[have > 0]
    if split == "test":
        chosen = decode[(decode - 1) % 16 == 0]
    else:
        chosen = np.sort(rng.choice(decode, size=min(n, len(decode)), replace=False))
    return np.concatenate([[0], chosen]).astype(np.int64)


def open_manifest(root: Path, s: ProfileSettings) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(asdict(s)))  # as the manifest stores them (tuples: lists)
    manifest = read_manifest(root) or {"settings": settings, "done": [], "seconds": {}}
    if manifest["settings"] != settings:
        raise ValueError(f"{root} holds a profile with other settings: {manifest['settings']}")
    return manifest


def run_profile(
    root: Path, s: ProfileSettings, limit: int | None, budget_min: float, max_num_seqs: int
) -> dict:
    """Profile shard by shard; finished shards are skipped; stops after the time budget."""
    from transformers import AutoTokenizer

    from trail.engine.sink import read_captures

    manifest = open_manifest(root, s)
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    prompts = load_prompts(tokenizer, s.seed, max_tokens=s.max_prompt_tokens, limit=limit)
    shards = [prompts[i : i + s.shard_size] for i in range(0, len(prompts), s.shard_size)]
    todo = [i for i in range(len(shards)) if i not in manifest["done"]]
    start = time.monotonic()
    sink = root / "capture"
    shutil.rmtree(sink, ignore_errors=True)  # rows of an interrupted shard
    llm = make_llm(s, max_num_seqs, sink) if todo else None
    for i in todo:
        if (time.monotonic() - start) / 60 > budget_min:
            print(f"stopped after the {budget_min} min budget; rerun to resume")
            break
        t0 = time.monotonic()
        rows = generate(llm, tokenizer, shards[i], s, i)
        write_shard(root, i, rows, shard_arrays(read_captures(sink), rows, s, i))
        tokens = sum(r["length"] for r in rows)
        secs = time.monotonic() - t0
        manifest["done"].append(i)
        manifest["seconds"][str(i)] = {"generate": round(secs, 1), "output_tokens": tokens}
        write_manifest(root, manifest)
        print(
            f"shard {i}: {len(rows)} requests, {tokens} tokens, {secs:.0f} s, {tokens / secs:.0f} tok/s"
        )
        for f in sink.glob("*.idx"):  # start the next shard's rows afresh (same pid files)
            f.with_suffix(".bin").write_bytes(b"")
            f.write_text("")
    return manifest
