"""MODEL_CARD.md for the shipped predictors, rendered from their JSON cards and the eval report
so the numbers in prose never drift from the files."""

from __future__ import annotations

from pathlib import Path

NAMES = {
    "constant": "best constant (train median at g)",
    "constant_mean": "train mean at g",
    "prompt": "prompt only (MiniLM), E - g",
    "probe": "probe only (every step)",
    "refined": "probe + Bayes, served cadence",
}


def _rows(tables: dict) -> list[str]:
    out = [
        "| predictor | prefill MAE | prefill tau | decode MAE | decode tau | decode pairwise | all MAE |",
        "|---|---|---|---|---|---|---|",
    ]
    pre, dec, every = tables["prefill"], tables["decode"], tables["all"]
    for key, name in NAMES.items():
        out.append(
            f"| {name} | {pre[key]['mae']:.1f} | {pre[key]['kendall_tau']:.3f} | "
            f"{dec[key]['mae']:.1f} | {dec[key]['kendall_tau']:.3f} | "
            f"{dec[key]['pairwise_accuracy']:.3f} | {every[key]['mae']:.1f} |"
        )
    return out


def model_name(card: dict) -> str:
    """The card's model name: a {name, path, fingerprint} record, or (older cards) a string."""
    model = card["model"]
    return model["name"] if isinstance(model, dict) else model


def render_card(probe: dict, prompt: dict, report: dict) -> str:
    pc, qc = probe["card"], prompt["card"]
    prof = pc["profile"]
    ref = report["refinement"]
    lines = [
        "# Length predictors for SmolLM2-135M-Instruct",
        "",
        f"- Served model: `{model_name(pc)}` (Q4_1 GGUF dequantised to bf16; profiled in "
        f"{prof['dtype']}), chat template, greedy, cap {prof['cap']} tokens.",
        f"- Data: {pc['data']}; prompts of 4..{prof['max_prompt_tokens']} tokens.",
        f"- Requests: {pc['requests']} (rows {pc['rows']}); split {pc['split']}; seed {pc['seed']}.",
        f"- Bins (K = {len(probe['bins']) - 1}): `{[int(e) for e in probe['bins']]}` — "
        "quantiles of the training remaining-length labels below the cap, plus a 16-token top "
        "bin for the answers cut at the cap (see docs/predictors.md).",
        f"- Probe: layer {probe['layer']} (0-based decoder layer, residual stream; step 0 = the "
        f"last prompt token), Linear({probe['hidden']},{probe['width']})-ReLU-"
        f"Linear({probe['width']},K); best epoch {pc['best_epoch']}.",
        f"- Prompt predictor: {qc['encoder']}; best of {qc.get('objectives', 'one objective')} "
        f"by validation Kendall tau: **{qc.get('objective', 'ce')}**.",
        f"- Served refinement (chosen on the val split at every step): probe every "
        f"{ref['predict_every']} step(s), temper {ref['temper']}, divide the training base rate: "
        f"{ref['divide_base_rate']}, start from the prompt prediction: {ref['prompt_prior']}.",
        "",
        f"Test split: {report['test']['requests']} held-out requests, replayed at every step "
        f"({report['test']['rows']} rows). Predictions capped by what max_tokens allows.",
        "",
        *_rows(report["tables"]),
        "",
        "Goals (issue 13):",
        "",
        *[
            f"- {k}: {g['measured']} (goal {g['goal']}) — {'met' if g['met'] else 'missed'}"
            for k, g in report["goals"].items()
        ],
    ]
    if "cost_ms" in report:
        lines += ["", f"Cost on this CPU (ms per call / per request): {report['cost_ms']}."]
    lines += [
        "",
        "Rebuild: see docs/predictors.md (`trail profile`, `trail train`, `trail eval`); "
        "`trail eval --shipped` reproduces this table from the committed test set.",
    ]
    return "\n".join(lines) + "\n"


def write_card(path: Path, probe: dict, prompt: dict, report: dict) -> None:
    path.write_text(render_card(probe, prompt, report))
