"""What would prefill-to-rank buy? Measure first, then simulate (issue 35, step 1).

`measure`: one engine prefills every prompt of a workload (max_tokens 1) under `trail` and
records, per request, the prompt predictor's expected length (what ranks the waiting queue
today) and the probe's end-of-prefill expectation refined with that prompt prior (what the
ranking lane ranks by); prints Kendall tau of each against the workload's true lengths
(~1.5 min for 300 prompts on 2 cores).
`sim`: the traced simulator on those requests, the lane's settings beside `trail` and TRAIL+,
under a step-cost preset: prefill is charged as the cost model prices it, which decides
whether ranking by a prefill pays (cpu-measured: a prompt token costs about a decode step;
gpu-like: prefill tokens nearly free). After the prefill a request's prediction counts down
(later probe outputs are not recorded here), so every probe policy is pessimistic alike.

    python -m trail.lab.analyses.prefill_rank measure --out runs/g0-brief
    python -m trail.lab.analyses.prefill_rank sim runs/g0-brief/g0.json --cost gpu-like
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from trail.lab.bench.policy_specs import parse_policy

app = typer.Typer(add_completion=False, no_args_is_help=True)
BRIEF = Path(__file__).resolve().parents[2] / "assets" / "smollm2" / "heldout_brief.jsonl"
LANE_POLICIES = (
    "fcfs,trail,trail@rank_lane_seqs=2+rank_lane_max_parked=8,"
    "trail@rank_lane_seqs=2+rank_lane_max_parked=64,trail-oracle"
)


@app.command()
def measure(
    workload: Path = BRIEF,
    cap: int = 160,
    out: Annotated[Path, typer.Option()] = Path("runs/g0-brief"),
) -> None:
    """Prompt and end-of-prefill probe predictions for every prompt of `workload`."""
    from scipy.stats import kendalltau
    from transformers import AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.lab.bench.experiment import engine_runner
    from trail.lab.bench.replay import read_events
    from trail.lab.workload.prompts import capped, load_jsonl
    from trail.models.chat import chat_prompt_ids
    from trail.predict.prompt import PromptPredictor

    cfg = EngineConfig(max_num_seqs=16, in_process=True)
    pool = capped(load_jsonl(workload), cap)
    tok = AutoTokenizer.from_pretrained(cfg.model)
    head = PromptPredictor.load()

    def prompt_predictions(texts: list[str]) -> tuple[list, list]:
        return head.predict_dist(texts).tolist(), [float(x) for x in head.expected(texts)]

    run = engine_runner(cfg.model_dump(exclude={"trail"}), tok, prompt_predictions, cap)
    run(pool, np.zeros(len(pool)), [1] * len(pool), "trail", {}, "trail", out)
    prompt: dict[int, float] = {}
    probe: dict[int, float] = {}
    for f in out.rglob("events.jsonl"):
        for e in read_events(f):
            rid = int(e["id"].rsplit("-", 1)[0][1:])  # q<i>-<suffix>
            if e["event"] == "arrival":
                prompt[rid] = e["initial_pred"]
            elif e["event"] == "probe" and e.get("at") == 0:
                probe.setdefault(rid, e["expected"])
    idx = sorted(set(prompt) & set(probe))
    rows = {
        "workload": str(workload),
        "cap": cap,
        "true": [min(int(pool[i].out_tokens or cap), cap) for i in idx],
        "prompt_tokens": [len(chat_prompt_ids(tok, pool[i].prompt)) for i in idx],
        "prompt": [prompt[i] for i in idx],
        "probe_g0": [probe[i] for i in idx],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "g0.json").write_text(json.dumps(rows))
    t = np.asarray(rows["true"])
    tau_prompt = kendalltau(rows["prompt"], t)[0]
    tau_probe = kendalltau(rows["probe_g0"], t)[0]
    typer.echo(
        f"{len(idx)} requests  tau prompt {tau_prompt:.3f}  probe at prefill {tau_probe:.3f}"
    )
    typer.echo(f"wrote {out / 'g0.json'}")


@app.command()
def sim(
    measured: Path,
    policies: str = LANE_POLICIES,
    cost: Annotated[str, typer.Option(help="cpu-measured or gpu-like")] = "cpu-measured",
    loads: str = "1.5,2.5",
    seeds: str = "0,1,2",
    n: int = 200,
    max_seqs: int = 16,
) -> None:
    """The traced simulator on measured prompt and prefill predictions (seconds)."""
    from trail.lab.sim.calibrate import load_cost
    from trail.lab.sim.engine import SimEngineConfig
    from trail.lab.sim.traced import Traces, run_traced

    d = json.loads(measured.read_text())
    true, g0, cap = np.asarray(d["true"]), np.asarray(d["probe_g0"]), int(d["cap"])
    counts = [np.arange(k) for k in true]
    traces = Traces(
        prompt_tokens=np.asarray(d["prompt_tokens"]),
        lengths=true,
        initial=np.minimum(np.asarray(d["prompt"]), cap),
        refined=[np.clip(g - c, 0, cap - c) for g, c in zip(g0, counts, strict=True)],
        cap=cap,
        predict_every=1,
    )
    cfg = SimEngineConfig(max_num_seqs=max_seqs, kv_tokens=23296, cost=load_cost(cost))
    specs = [parse_policy(p, 0.8) for p in policies.split(",")]
    res = run_traced(
        traces,
        replace(cfg, refine_every=4),
        specs,
        [float(x) for x in loads.split(",")],
        [int(s) for s in seeds.split(",")],
        n,
    )
    typer.echo(f"cost {cost}; FCFS/x with 95 % paired intervals over seeds and requests")
    for load, rows in res["loads"].items():
        for label, r in rows.items():
            m = r["fcfs_over_mean"]
            typer.echo(
                f"load {load:>4} {label:<48} mean {m['value']:.2f} [{m['low']:.2f}, "
                f"{m['high']:.2f}]  P99 {r['fcfs_over_p99']['value']:.2f}  2nd token "
                f"{r['fcfs_over_ttst']['value']:.2f}  stall {r['longest_stall_s']:.0f} s"
            )


if __name__ == "__main__":
    app()
