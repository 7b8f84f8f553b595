"""MODEL_CARD.md for the shipped predictors, rendered from their JSON cards and the eval report
so the numbers in prose never drift from the files."""

from __future__ import annotations

from pathlib import Path


def _row(name: str, m: dict) -> str:
    return f"| {name} | {m['all']:.1f} | {m['prefill']:.1f} | {m['decode']:.1f} |"


def render_card(probe: dict, prompt: dict, report: dict) -> str:
    """Markdown: model, data, split, seed, bins, layer, validation/test MAE, cost."""
    pc, qc, mae = probe["card"], prompt["card"], report["mae"]
    prof = pc["profile"]
    lines = [
        "# Length predictors for SmolLM2-135M-Instruct",
        "",
        f"- Served model: `{pc['model']}` (Q4_1 GGUF dequantised to bf16; profiled in "
        f"{prof['dtype']}), chat template, greedy, cap {prof['cap']} tokens.",
        f"- Data: {pc['data']}; prompts of 4..{prof['max_prompt_tokens']} tokens.",
        f"- Requests: {pc['requests']} (rows {pc['rows']}); split {pc['split']}; seed {pc['seed']}.",
        f"- Bins (K = {len(probe['bins']) - 1}): `{[int(e) for e in probe['bins']]}` — "
        "quantiles of the training remaining-length labels below the cap, plus a 16-token top "
        "bin for the answers cut at the cap (see docs/predictors.md).",
        f"- Probe: layer {probe['layer']} (0-based decoder layer, residual stream), "
        f"Linear({probe['hidden']},{probe['width']})-ReLU-Linear({probe['width']},K); "
        f"best epoch {pc['best_epoch']}; val MAE {pc['val_mae']:.2f}, test MAE "
        f"{pc['test_mae']:.2f} tokens (remaining length, all probed rows).",
        f"- Prompt predictor: {qc['encoder']} + MLP head; val MAE {qc['val_mae']:.2f}, "
        f"test MAE {qc['test_mae']:.2f} tokens (total length).",
        "",
        f"Test split ({report['test']['requests']} requests, {report['test']['rows']} rows), "
        "MAE in tokens of the remaining length:",
        "",
        "| predictor | all rows | prefill (total) | decode steps |",
        "|---|---|---|---|",
        _row("training mean", mae["mean"]),
        _row("prompt only (MiniLM), E - g", mae["prompt"]),
        _row("probe only", mae["probe"]),
        _row("probe + Bayes refinement", mae["refined"]),
        "",
        f"Prompt-only / refined = **{report['ratio_prompt_over_refined']}x** (paper: 2.66x).",
    ]
    if "cost_ms" in report:
        lines += ["", f"Cost on this CPU (ms): {report['cost_ms']}."]
    lines += ["", "Rebuild: see docs/predictors.md (`trail profile`, `trail train`, `trail eval`)."]
    return "\n".join(lines) + "\n"


def write_card(path: Path, probe: dict, prompt: dict, report: dict) -> None:
    path.write_text(render_card(probe, prompt, report))
