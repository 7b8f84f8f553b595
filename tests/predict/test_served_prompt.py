"""`trail train prompt --from-served`: a new prompt head from the embeddings the ingress captured
and the lengths the replicas labelled; refused unless better on held-out requests (issue 19)."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from trail.cli import app
from trail.lab.learn.served_prompt import load_served_prompts
from trail.predict.bins import LengthBins
from trail.predict.prompt import PromptHead, PromptPredictor

runner = CliRunner()


def write_served_prompts(folder, n: int = 240, seed: int = 0) -> None:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    (folder / "labels").mkdir(parents=True)
    (folder / "prompts").mkdir()
    labels, prompts = [], []
    for i in range(n):
        rid, length = f"req-{i}", int(rng.integers(4, 120))
        emb = rng.normal(0, 0.1, size=384)
        emb[:32] += length / 128  # the embedding says how long the answer is
        labels.append({"id": rid, "length": length, "finish_reason": "stop", "max_tokens": 100})
        prompts.append({"id": rid, "embedding": emb.round(5).tolist(), "prompt_version": "v0"})
    prompts.append({"id": "never-finished", "embedding": [0.0] * 384, "prompt_version": "v0"})
    for kind, rows in (("labels", labels), ("prompts", prompts)):
        (folder / kind / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def flat_predictor(path) -> None:  # noqa: ANN001
    head = PromptHead(384, 8)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
    PromptPredictor(head, LengthBins.uniform(8, 128), {"note": "flat"}).save(path)


def test_prompt_rows_are_the_finished_requests_with_an_embedding(tmp_path):
    write_served_prompts(tmp_path)
    data = load_served_prompts(tmp_path)
    assert len(data.lengths) == 240  # the unfinished one is left out
    assert np.corrcoef(data.embeddings[:, :32].mean(1), data.lengths)[0, 1] > 0.9
    assert set(data.room) == {100.0}


def test_a_better_head_ships_and_a_worse_one_is_refused(tmp_path):
    served, current, good, worse = (tmp_path / x for x in ("served", "flat", "good", "worse"))
    write_served_prompts(served)
    flat_predictor(current)
    base = ["train", "prompt", "--from-served", str(served), "--lr", "0.01"]
    res = runner.invoke(app, [*base, "--current", str(current), "--out", str(good)])
    assert res.exit_code == 0, res.output
    report = json.loads((served / "retrain-prompt.json").read_text())
    assert report["shipped"] and report["retrained"]["mae"] < 0.6 * report["current"]["mae"]
    assert report["retrained"]["kendall_tau"] > 0.5
    new = PromptPredictor.load(good)
    assert new.bins.to_list() == LengthBins.uniform(8, 128).to_list()
    assert new.card["parent_version"] == PromptPredictor.load(current).version != new.version
    # picked by validation MAE, as the verdict: a tau pick sized for the old traffic shipped once
    assert new.card["selected_by"] == "validation mae"
    scores = [v for k, v in new.card["candidates"].items() if k.startswith("val_")]
    assert len(scores) == 2 and all(v > 0 for v in scores)  # MAEs (a tau pick scores -tau)

    res = runner.invoke(app, [*base, "--current", str(good), "--out", str(worse), "--epochs", "0"])
    assert res.exit_code == 1
    assert not json.loads((served / "retrain-prompt.json").read_text())["shipped"]
    assert not worse.exists()
