"""Run a step-driven scenario on one engine in a fresh process; write results as JSON.

`python -m trail.engine.run_scenario SPEC OUT`. vLLM reads its environment once per process,
so every engine configuration (tests, the replay benchmark) gets its own process.
SPEC: {"engine": EngineConfig, "phases": [[{id, prompt_ids, params, at_step|at_time}, ...]],
"preload": ["module:function", ...]} — functions called before the engine starts (the tests'
CPU stand-ins for GPU-only vLLM paths, tests/support/gpu_standins.py).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    from trail.engine.engine_config import EngineConfig

    cfg = EngineConfig.model_validate(spec["engine"])
    cfg.apply_env()
    for target in spec.get("preload", []):
        module, _, fn = target.partition(":")
        getattr(importlib.import_module(module), fn)()
    from vllm import LLM, SamplingParams

    from trail.engine.stepper import Arrival, StepDriver

    llm = LLM(**cfg.engine_kwargs())
    results = {}
    for phase in spec["phases"]:  # phases run one after another on the same engine
        arrivals = [
            Arrival(
                request_id=a["id"],
                prompt_ids=a["prompt_ids"],
                params=SamplingParams(temperature=0.0, **a["params"]),
                at_step=a.get("at_step"),
                at_time=a.get("at_time"),
            )
            for a in phase
        ]
        done = StepDriver(llm.llm_engine).run(arrivals)
        results.update(
            {
                rid: {**asdict(f), "latency_s": f.latency_s, "ttft_s": f.ttft_s, "tpot_s": f.tpot_s}
                for rid, f in done.items()
            }
        )
    with open(out_path, "w") as f:
        json.dump(results, f)


def run_in_subprocess(spec: dict, workdir: Path, timeout: int = 3600) -> dict:
    """Run SPEC in a fresh Python process; raise with the tail of stderr on failure."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"scenario-{time.time_ns()}.json"
    out_path = spec_path.with_suffix(".out.json")
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "trail.engine.run_scenario", str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"engine scenario failed:\n{proc.stderr[-4000:]}")
    return json.loads(out_path.read_text())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
