"""Profile the served model: natural output lengths (greedy, EOS or cap) and hidden states.

Per shard, vLLM generates the answers (batched) with the TRAIL model class, whose worker-side
capture sink (trail/engine/sink.py) writes the residual stream of a few candidate layers at the
rows the engine computes anyway: no second, teacher-forced pass (which cost as much as the
generation itself). Rows follow the engine's convention (hidden.py): step g is the row whose
logits sampled output token g, labelled with the remaining length L - g; g = 0 is the last
prompt token. Train requests keep `positions` random steps (as the release); val and test
requests keep every step ("dense"), so evaluation can replay refinement at the served cadence.

Any model the engine can capture from: candidate layers are fractions of its depth, the dtype
and graph mode follow the platform, and `shards` (a range of global shard indices, in the
seeded prompt order) lets several GPUs or nodes profile disjoint slices that `trail profile
merge` (trail/lab/learn/merge.py) unites.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trail.lab.learn.shards import read_manifest, write_manifest, write_shard
from trail.lab.workload.sharegpt import Prompt, load_prompts

DEFAULT_LAYER_FRACTIONS = (0.2, 0.3, 0.4, 0.5, 0.57, 0.63, 0.7, 0.8, 0.9)
"""Candidate layers as fractions of depth, denser mid-depth where probes read length best; the
sweep picks one. On SmolLM2's 30 layers they are the shipped (6, 9, 12, 15, 17, 19, 21, 24, 27)."""
# steps of rows the capture writer may hold in memory before it drops (counted): one step of a
# 256-sequence batch at hidden 4096 x 9 layers is ~19 MB, so ~2.4 GB of host memory at most
QUEUED_STEPS = 128


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
    layers: tuple[int, ...] = ()  # ids, from resolve_layers (the manifest keeps the ids)
    capture: str = "in-engine, last prompt token + decode rows"


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs, not what it computes: may differ between runs of one profile."""

    max_num_seqs: int = 128
    tensor_parallel_size: int = 1
    enforce_eager: bool = True


def model_depth(model: str) -> int:
    """Decoder layers of the (text) model, from its HF config: no weights loaded."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(model).get_text_config().num_hidden_layers)


def layers_at_fractions(n_layers: int, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Layer ids nearest each fraction of depth, clipped to 0..n-2 (vLLM's aux states are the
    outputs of those layers), sorted and deduplicated."""
    top = n_layers - 2
    if top < 0:
        raise ValueError(f"a model with {n_layers} layer(s) has no layer to capture from")
    return tuple(sorted({min(max(int(f * n_layers + 0.5), 0), top) for f in fractions}))


def resolve_layers(spec: str | None, n_layers: int) -> tuple[int, ...]:
    """`--layers`: None = the default fractions; else comma-separated ids ("6,9,12") or
    fractions of depth ("0.25,0.5"). Explicit ids must exist: a typo should not be clipped."""
    if not spec:
        return layers_at_fractions(n_layers, DEFAULT_LAYER_FRACTIONS)
    ids: set[int] = set()
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item.isdigit():
            if int(item) > n_layers - 2:
                raise ValueError(
                    f"layer {item} does not exist: the model has {n_layers} layers and vLLM "
                    f"returns the output of layers 0..{n_layers - 2}"
                )
            ids.add(int(item))
        else:
            ids.update(layers_at_fractions(n_layers, (fraction(item),)))
    return tuple(sorted(ids))


def fraction(item: str) -> float:
    value = float(item)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--layers {item!r}: neither a layer id nor a fraction of depth in 0..1")
    return value


def platform_dtype() -> str:
    """fp32 on CPU (bf16 runs ~8x slower without AVX512-BF16); on GPUs bf16, or fp16 where the
    GPU has no bf16 (pre-Ampere)."""
    import torch
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        return "float32"
    return "bfloat16" if torch.bfloat16 in current_platform.supported_dtypes else "float16"


def platform_eager() -> bool:
    """Eager on CPU (compiling costs more than a CPU profile gains); compiled graphs on GPUs,
    where capture is graph-safe (aux hidden states are graph outputs)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


ShardRange = tuple[int, int | None]  # global shards [start, stop); stop None: to the end


def parse_shard_range(spec: str | None) -> ShardRange | None:
    """Global shards to profile: A:B = shards A..B-1, A: = A onwards, None = every shard."""
    if not spec:
        return None
    first, sep, last = (x.strip() for x in spec.partition(":"))
    if not sep or not first.isdigit() or (last and not last.isdigit()):
        raise ValueError(f"--shard-range {spec!r}: expected A:B (shards A..B-1) or A:")
    stop = int(last) if last else None
    if stop is not None and stop <= int(first):
        raise ValueError(f"--shard-range {spec!r} holds no shard")
    return int(first), stop


def repeat_ratio(ids: list[int], window: int = 256) -> float:
    """Unique 4-grams / 4-grams over the tail: ~0.1 means a repetition loop."""
    tail = ids[-window:]
    grams = [tuple(tail[i : i + 4]) for i in range(len(tail) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def make_llm(s: ProfileSettings, engine: EngineOptions, sink: Path):  # noqa: ANN201 - vllm.LLM
    """Offline engine with the capture sink: rows go to disk from a background writer behind a
    bounded queue (off the step path; drops are counted, see flush_sink). Prefix caching is
    off so that a shard's rows do not depend on the shards run before it in this process: a
    shard range reproduces, bit for bit, the same shards of a single run."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # else vLLM binds to one core
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from trail.engine.engine_config import force_v1_runner
    from trail.engine.overrides import TrailOverrides
    from trail.engine.trail_config import TrailConfig

    force_v1_runner()
    from vllm import LLM

    trail = TrailConfig(
        policy="fcfs",
        capture_layers=list(s.layers),
        capture_dir=str(sink),
        capture_queue_rows=QUEUED_STEPS,
    )
    return LLM(
        model=s.model,
        dtype=s.dtype,
        enforce_eager=engine.enforce_eager,
        tensor_parallel_size=engine.tensor_parallel_size,
        max_model_len=max(1536, s.max_prompt_tokens + s.cap),
        max_num_seqs=engine.max_num_seqs,
        enable_prefix_caching=False,
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
            check_dense(have, length, shard, j)
            dense["dense_req"].append(np.full(len(have), j))
            dense["dense_steps"].append(have)
            dense["dense_vectors"].append(np.stack([got[int(g)] for g in have]))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    if not dense["dense_req"]:  # no val/test request here (small shards): empty, not absent
        empty = np.zeros(0, dtype=np.int64)
        dense = {
            "dense_req": [empty],
            "dense_steps": [empty],
            "dense_vectors": [out["vectors"][:0]],
        }
    out.update({k: np.concatenate(v) for k, v in dense.items()})
    return out


def check_dense(have: np.ndarray, length: int, shard: int, j: int) -> None:
    """A val/test request must hold every step 0..L-1: evaluation replays them all, and a
    missing row (a dropped write) would silently shift what it measures."""
    if len(have) != length:
        raise RuntimeError(
            f"shard {shard} request {j}: the sink holds {len(have)} of its {length} steps; "
            "dense val/test rows must all arrive (was a capture row dropped?)"
        )


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
    root: Path,
    s: ProfileSettings,
    engine: EngineOptions,
    *,
    limit: int | None = None,
    shards: ShardRange | None = None,
    budget_min: float = float("inf"),
) -> dict:
    """Profile shard by shard (only `shards`, if given); finished shards are skipped; stops
    after the time budget."""
    from transformers import AutoTokenizer

    from trail.engine.sink import read_captures

    if not s.layers:
        raise ValueError("ProfileSettings.layers is empty: resolve them with resolve_layers")
    manifest = open_manifest(root, s)
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    prompts = load_prompts(
        tokenizer, s.seed, max_tokens=s.max_prompt_tokens, limit=prompt_limit(limit, shards, s)
    )
    chunks = [prompts[i : i + s.shard_size] for i in range(0, len(prompts), s.shard_size)]
    todo = [i for i in shard_indices(shards, len(chunks)) if i not in manifest["done"]]
    start = time.monotonic()
    sink = root / "capture"
    shutil.rmtree(sink, ignore_errors=True)  # rows of an interrupted shard
    llm = make_llm(s, engine, sink) if todo else None
    for i in todo:
        if (time.monotonic() - start) / 60 > budget_min:
            print(f"stopped after the {budget_min} min budget; rerun to resume")
            break
        t0 = time.monotonic()
        rows = generate(llm, tokenizer, chunks[i], s, i)
        dropped = flush_sink(llm)
        write_shard(root, i, rows, shard_arrays(read_captures(sink), rows, s, i))
        tokens = sum(r["length"] for r in rows)
        secs = time.monotonic() - t0
        manifest["done"] = sorted({*manifest["done"], i})
        manifest["seconds"][str(i)] = {
            "generate": round(secs, 1),
            "output_tokens": tokens,
            "requests": len(rows),
            "dropped_rows_so_far": dropped,
        }
        write_manifest(root, manifest)
        print(
            f"shard {i}: {len(rows)} requests, {tokens} tokens, {secs:.0f} s, {tokens / secs:.0f} tok/s"
        )
        empty_sink(sink)
    return manifest


def flush_sink(llm) -> int:  # noqa: ANN001 - vllm.LLM
    """Wait until the workers' queued rows are on disk; rows dropped so far (queue full, disk
    error). A val/test request missing a row then fails its shard (shard_arrays checks)."""
    from trail.engine.capture import FLUSH_CAPTURE

    stats = [x for x in llm.collective_rpc(FLUSH_CAPTURE) if x]
    dropped = sum(x["dropped_queue"] + x["dropped_error"] + x["dropped_quota"] for x in stats)
    if dropped:
        print(f"capture sink dropped {dropped} rows so far (disk slower than the engine)")
    return dropped


def prompt_limit(limit: int | None, shards: ShardRange | None, s: ProfileSettings) -> int | None:
    """Prompts to load: a shard range ending at B needs only the first B shards' prompts."""
    if shards is None or shards[1] is None:
        return limit
    needed = shards[1] * s.shard_size
    return needed if limit is None else min(limit, needed)


def shard_indices(shards: ShardRange | None, n_shards: int) -> range:
    if shards is None:
        return range(n_shards)
    start, stop = shards
    return range(start, n_shards if stop is None else min(stop, n_shards))


def empty_sink(sink: Path) -> None:
    """Start the next shard's rows afresh (the worker keeps its open files, so truncate)."""
    for f in sink.glob("*.idx"):
        f.with_suffix(".bin").write_bytes(b"")
        f.write_text("")
