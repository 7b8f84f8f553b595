"""Start the Serve app (loopback Ray), report start-up time and memory per replica, run a short
closed-loop load through HTTP and report requests/s and latency; then shut everything down.

    .venv/bin/python -m ops.loadtest.serve_load --model smollm2 --replicas 2 --requests 40 \
        --concurrency 8 --max-tokens 64 --router trail
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from trail.serve.localcluster import RAY_ENV, start_loopback_serve

PROMPTS = [
    "Explain why the sky is blue.",
    "Write a haiku about autumn.",
    "List three uses of a paperclip.",
    "What is the capital of Japan?",
    "Describe how a bicycle works in a few sentences.",
    "Give me a short tip for learning to cook.",
]


def replica_memory_mib() -> dict[int, float]:
    """RSS of each LLMServer replica process plus its vLLM children (EngineCore, worker)."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "ServeReplica" in cmd and "LLMServer" in cmd:
            procs = [proc, *proc.children(recursive=True)]
            out[proc.pid] = sum(p.memory_info().rss for p in procs) / 2**20
    return out


async def load(url: str, model: str, n: int, concurrency: int, max_tokens: int) -> dict:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    per_replica: dict[str, int] = {}
    tokens = 0

    async def one(i: int, client: httpx.AsyncClient) -> None:
        nonlocal tokens
        body = {
            "model": model,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        async with sem:
            t0 = time.perf_counter()
            r = await client.post(f"{url}/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - t0)
        r.raise_for_status()
        tokens += r.json()["usage"]["completion_tokens"]
        rep = r.headers["x-trail-replica"]
        per_replica[rep] = per_replica.get(rep, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*[one(i, client) for i in range(n)])
    wall = time.perf_counter() - t0
    return {
        "requests": n,
        "concurrency": concurrency,
        "wall_s": round(wall, 1),
        "requests_per_s": round(n / wall, 3),
        "output_tokens_per_s": round(tokens / wall, 1),
        "mean_latency_s": round(statistics.mean(latencies), 2),
        "p90_latency_s": round(sorted(latencies)[int(0.9 * (n - 1))], 2),
        "per_replica": per_replica,
    }


def online_accuracy_from(redis_url: str | None, n: int) -> dict:
    """Initial vs refined MAE of the last n requests, from the records the app keeps in Redis."""
    from trail.serve.redis_host import resolve_redis_url
    from trail.store import StoreReader
    from trail.store.record import online_accuracy

    time.sleep(0.5)  # the writer flushes every 50 ms
    records = StoreReader.from_url(resolve_redis_url(redis_url)).recent(n)
    acc = online_accuracy(records)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in acc.items()}


def print_summary(report: dict) -> None:
    """A few readable lines (the full report goes to --json)."""
    from rich.console import Console

    load, acc = report["load"], report["load"].get("online_accuracy", {})
    console = Console()
    console.print(
        f"[bold]Serve app[/bold]: Ray {report['ray_start_s']} s, app ready {report['app_ready_s']} s,"
        f" replicas {len(report['replica_rss_mib'])} ({', '.join(f'{m} MiB' for m in report['replica_rss_mib'])})"
    )
    console.print(
        f"[bold]load[/bold]: {load['requests']} requests at concurrency {load['concurrency']} in "
        f"{load['wall_s']} s: {load['output_tokens_per_s']} tok/s, mean latency "
        f"{load['mean_latency_s']} s, P90 {load['p90_latency_s']} s; per replica {load['per_replica']}"
    )
    if acc:
        console.print(f"[bold]online accuracy (Redis records)[/bold]: {acc}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--policy", default="trail-prompt")
    ap.add_argument("--router", default="trail", choices=["trail", "pow2", "round_robin"])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--redis-url", default=None, help="default: embedded Redis (stops with us)")
    ap.add_argument("--json", default=None, help="also write the full report here")
    args = ap.parse_args()
    os.environ.update(RAY_ENV)  # before Ray is imported
    import ray
    from ray import serve

    from trail.serve.app import build_app

    t0 = time.perf_counter()
    port = start_loopback_serve()
    t_ray = time.perf_counter() - t0
    load_dir = Path(tempfile.mkdtemp(prefix="trail-load-"))
    app_args = {
        "served_model_name": args.model,
        "engine": {
            "model": args.model,
            "max_num_seqs": 16,
            "kv_cache_gib": 1,
            "trail": {"policy": args.policy},
        },
        "replicas": {
            "num_replicas": args.replicas,
            "num_cpus": 0.5,
            "env": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
        },
        "router": {"kind": args.router},
        "load_dir": str(load_dir),
        "redis_url": args.redis_url,
    }
    try:
        t1 = time.perf_counter()
        serve.run(build_app(app_args), name="trail", route_prefix="/")
        t_app = time.perf_counter() - t1
        ready = [json.loads(p.read_text())["ready_s"] for p in load_dir.glob("*.replica.json")]
        mem = replica_memory_mib()
        url = f"http://127.0.0.1:{port}"
        result = asyncio.run(
            load(url, args.model, args.requests, args.concurrency, args.max_tokens)
        )
        result["online_accuracy"] = online_accuracy_from(args.redis_url, args.requests)
        report = {
            "ray_start_s": round(t_ray, 1),
            "app_ready_s": round(t_app, 1),
            "replica_engine_ready_s": ready,
            "replica_rss_mib": [round(m) for m in mem.values()],
            "load": result,
            "args": vars(args),
        }
        print_summary(report)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2))
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(load_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
