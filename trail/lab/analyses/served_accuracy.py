"""How well the predictors the scheduler really held ranked a replay's requests.

A replay cell records each request's prompt prediction (`initial_expected`, what the waiting
queue is ordered by) and every refined prediction of remaining tokens (`refined`, [generated,
expected remaining]). This scores them against the lengths the requests really had: Kendall τ,
MAE beside the best constant (the median), and the AUC of "will hit the cap" — the call that
matters most when a few loopers hold most of the work. Pooled over a run folder's seeds.

    python -m trail.lab.analyses.served_accuracy runs/brief_high trail
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from trail.predict.accuracy import auc, kendall_tau, mae

POSITIONS = (0, 16)


def cells_of(run: Path, label: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run.glob(f"cells/seed*/load*/{label}.json"))]


def rows(cells: list[dict]) -> dict[str, np.ndarray]:
    """Per request: true length, prompt prediction, refined remaining at each of POSITIONS
    (nan when the request had ended or the probe had not spoken by then)."""
    true, initial, refined = [], [], []
    for cell in cells:
        by_index = cell.get("initial_expected")  # request q<i> is the cell's item i
        for rid, r in cell["requests"].items():
            true.append(r["length"])
            initial.append(by_index[int(rid[1:])] if by_index else np.nan)
            refined.append([_remaining_at(r.get("refined") or [], g) for g in POSITIONS])
    return {
        "true": np.asarray(true, dtype=float),
        "initial": np.asarray(initial, dtype=float),
        "refined": np.asarray(refined, dtype=float).reshape(len(true), len(POSITIONS)),
    }


def _remaining_at(points: list[list[float]], g: int) -> float:
    """The last prediction made at or before `g` generated tokens (nan if none)."""
    held = [expected for at, expected in points if at <= g]
    return held[-1] if held else float("nan")


def score(pred: np.ndarray, true: np.ndarray, cap: int) -> dict[str, float]:
    ok = ~np.isnan(pred)
    pred, true = pred[ok], true[ok]
    at_cap = true >= cap
    return {
        "n": int(len(true)),
        "tau": round(kendall_tau(pred, true), 3),
        "mae": round(mae(pred, true), 1),
        "constant_mae": round(mae(np.full_like(true, np.median(true)), true), 1),
        "cap_auc": round(auc(pred, at_cap), 3) if 0 < at_cap.sum() < len(true) else float("nan"),
    }


def accuracy(run: Path, label: str, cap: int = 512) -> dict[str, dict[str, float]]:
    r = rows(cells_of(run, label))
    if not len(r["true"]):
        raise SystemExit(f"no cells for {label!r} under {run}/cells")
    if np.isnan(r["initial"]).all() and np.isnan(r["refined"]).all():
        raise SystemExit(f"{label!r} under {run}: no recorded predictions (HTTP cells hold none)")
    out = {"prompt (total length)": score(r["initial"], r["true"], cap)}
    if np.isnan(r["refined"]).all():  # a policy without the probe
        return out
    for j, g in enumerate(POSITIONS):
        alive = r["true"] > g  # still running at g: rank what is left
        out[f"refined at {g} generated (remaining)"] = score(
            r["refined"][alive, j], r["true"][alive] - g, cap - g
        )
    return out


def main(argv: list[str]) -> None:
    run, label = Path(argv[0]), argv[1] if len(argv) > 1 else "trail"
    scores = accuracy(run, label)
    print(f"{run} / {label}")
    print(f"{'prediction':40s} {'n':>5s} {'tau':>6s} {'MAE':>7s} {'const':>7s} {'cap AUC':>8s}")
    for name, s in scores.items():
        print(
            f"{name:40s} {s['n']:5d} {s['tau']:6.3f} {s['mae']:7.1f} {s['constant_mae']:7.1f}"
            f" {s['cap_auc']:8.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
