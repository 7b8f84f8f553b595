"""`trail eval`: test-split MAE of the four predictors, plots, probe cost; JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from trail.predict.profile_cli import default_profile_dir

app = typer.Typer(help="Evaluate the length predictors on the held-out test split.")
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "smollm2"
PLOTS = Path(__file__).resolve().parents[2] / "docs" / "plots"


def evaluate(t, bundle, prompt, train_mean: float) -> dict:  # noqa: ANN001
    """Every number of the report that depends only on the predictors and the test rows."""
    import torch

    from trail.predict.evaluate import confusion, mae_by_progress, mae_table, predictions

    prompt_dist = prompt.predict_dist(t.texts)
    probe_probs = bundle.probe.probs(torch.as_tensor(t.vectors, dtype=torch.float32)).double()
    pred = predictions(bundle.bins, prompt_dist, probe_probs.numpy(), t, train_mean)
    table = mae_table(pred, t)
    return {
        "mae": table,
        "ratio_prompt_over_refined": round(table["prompt"]["all"] / table["refined"]["all"], 3),
        "ratio_prompt_over_probe": round(table["prompt"]["all"] / table["probe"]["all"], 3),
        "by_progress": mae_by_progress(pred, t),
        "confusion": confusion(bundle.bins, pred["_posterior"], t.labels).tolist(),
        "test": {"requests": len(t.lengths), "rows": len(t.labels)},
    }


@app.callback(invoke_without_command=True)
def eval_(
    shipped: bool = typer.Option(False, help="Use the committed test set (no profile needed)"),
    probe: Path = typer.Option(ASSETS / "probe", help="Probe folder"),
    prompt: Path = typer.Option(ASSETS / "prompt", help="Prompt predictor folder"),
    profile: Path = typer.Option(None, help="Profile folder (default: trail profile's)"),
    write_testset: bool = typer.Option(False, help="Also write the committed test set"),
    report: Path = typer.Option(ASSETS / "eval.json", help="JSON report path"),
    plots: Path = typer.Option(PLOTS, help="Folder for pred_*.png"),
    cost: bool = typer.Option(True, help="Time the probe and one decode step"),
) -> None:
    from trail.predict.probe import ProbeBundle
    from trail.predict.prompt import PromptPredictor
    from trail.predict.testset import load_testset, testset_from_profile
    from trail.predict.testset import write_testset as write_set

    bundle, head = ProbeBundle.load(probe), PromptPredictor.load(prompt)
    if shipped:
        t, layer = load_testset()
        if layer != bundle.layer:
            raise typer.BadParameter(f"test set is layer {layer}, probe is {bundle.layer}")
    else:
        t, requests = testset_from_profile(profile or default_profile_dir(), bundle.layer)
        if write_testset:
            write_set(ASSETS / "testset", t, requests, bundle.layer)
    out = evaluate(t, bundle, head, float(bundle.card["train_label_mean"]))
    out.update({"layer": bundle.layer, "bins": bundle.bins.to_list(), "shipped": shipped})
    if cost:
        out["cost_ms"] = _costs(bundle)
    _plots(out, bundle, t, plots)
    report.write_text(json.dumps(out, indent=1) + "\n")
    if write_testset:
        _card_from_files(probe, prompt, out)
    _echo(out, report, plots)


def _card_from_files(probe: Path, prompt: Path, out: dict) -> None:
    from trail.predict.card import write_card

    meta = [json.loads(p.read_text()) for p in (probe / "probe.json", prompt / "prompt.json")]
    write_card(ASSETS / "MODEL_CARD.md", *meta, out)


def _costs(bundle) -> dict:  # noqa: ANN001
    from trail.models.paths import smollm2_dir
    from trail.predict.cost import decode_step_cost, probe_cost

    costs = {"probe_by_batch": probe_cost(bundle.probe)}
    if (smollm2_dir() / "config.json").exists():
        costs["decode_step_batch1_fp32"] = decode_step_cost(smollm2_dir())
    return costs


def _plots(out: dict, bundle, t, folder: Path) -> None:  # noqa: ANN001
    from trail.predict.plots import plot_confusion, plot_layers, plot_lengths, plot_progress

    plot_progress(out["by_progress"], folder / "pred_mae_vs_progress.png")
    plot_confusion(np.array(out["confusion"]), bundle.bins, folder / "pred_confusion.png")
    plot_lengths(t.lengths, bundle.bins, folder / "pred_test_lengths.png")
    sweep = Path(ASSETS / "sweep.json")
    if sweep.exists():
        plot_layers(json.loads(sweep.read_text()), bundle.layer, folder / "pred_mae_vs_layer.png")


def _echo(out: dict, report: Path, plots: Path) -> None:
    for name, row in out["mae"].items():
        typer.echo(
            f"{name:8s} MAE all {row['all']:7.2f}  prefill {row['prefill']:7.2f}  "
            f"decode {row['decode']:7.2f}"
        )
    typer.echo(f"prompt / refined = {out['ratio_prompt_over_refined']}x  (paper: 2.66x)")
    if "cost_ms" in out:
        typer.echo(f"cost (ms): {out['cost_ms']}")
    typer.echo(f"report {report}; plots {plots}/pred_*.png")


if __name__ == "__main__":
    app()
