"""How much of the prompt predictor's ranking is the cap decision.

SmolLM2-135M loops to the 512-token cap on most prompts, and every capped answer ties at the top
in Kendall's tau-b. This prints what a perfect "will it hit the cap" oracle alone would score,
how well the shipped prompt predictor makes that call (AUC), and its tau inside each group — the
numbers behind "what limits it" in docs/predictors.md. Runs on the committed test set (~10 s).

    python -m trail.lab.analyses.cap_ceiling
"""

from __future__ import annotations

import json

import numpy as np

from trail.predict.accuracy import auc, kendall_tau, pairwise_accuracy
from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptPredictor

TESTSET = DEFAULT_PROMPT_DIR.parent / "testset" / "requests.json"


def main() -> None:
    requests = json.loads(TESTSET.read_text())["requests"]
    true = np.array([r["length"] for r in requests], dtype=float)
    capped = np.array([r["finish"] == "length" for r in requests])
    expected = PromptPredictor.load().expected([r["text"] for r in requests])
    oracle = capped.astype(float)
    rankings = {
        "prompt predictor": (expected, true),
        "a perfect cap/no-cap oracle alone": (oracle, true),
        "that oracle, then the prompt order inside each group": (oracle * 1e6 + expected, true),
        "prompt predictor, answers below the cap only": (expected[~capped], true[~capped]),
    }
    print(f"{len(requests)} test requests, {capped.mean():.1%} at the cap")
    print(f"AUC of the prompt prediction for 'hits the cap': {auc(expected, capped):.3f}")
    print(f"{'ranking':56s} {'tau-b':>6s} {'pairwise':>9s}")
    for name, (pred, truth) in rankings.items():
        tau, pairs = kendall_tau(pred, truth), pairwise_accuracy(pred, truth)
        print(f"{name:56s} {tau:6.3f} {pairs:9.3f}")


if __name__ == "__main__":
    main()
