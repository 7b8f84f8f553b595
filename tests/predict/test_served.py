"""`trail train probe --from-served`: retraining from what the serving path captured, and the
refusal of a probe that is not better than the running one (issue 19)."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from trail.cli import app
from trail.engine.sink import CaptureSink
from trail.lab.learn.served import load_served, split_of, verdict
from trail.predict.bins import LengthBins
from trail.predict.probe import ProbeBundle, ProbeMLP

H, LAYER, EVERY = 16, 3, 4
runner = CliRunner()


def write_served(folder, n: int = 160, seed: int = 0) -> dict[str, int]:  # noqa: ANN001
    """Captured rows whose first two features say how long the answer is, plus their labels
    (a few requests aborted, and one captured request without a label, as in serving)."""
    rng = np.random.default_rng(seed)
    sink = CaptureSink(folder, layers=[1, LAYER], hidden=H)
    lengths = {f"req-{i}": int(rng.integers(4, 120)) for i in range(n)}
    labels = []
    for rid, length in lengths.items():
        for g in range(0, length, EVERY):
            vec = rng.normal(0, 0.1, size=(2, H)).astype(np.float32)
            vec[1, 0], vec[1, 1] = (length - g) / 128, length / 128  # layer 3 informs
            sink.write([(rid, g, torch.as_tensor(vec))])
        reason = "abort" if rid.endswith("7") else "stop"
        labels.append({"id": rid, "length": length, "finish_reason": reason})
    sink.write([("no-label", 0, torch.zeros(2, H))])
    sink.close()
    (folder / "labels").mkdir()
    (folder / "labels" / "r1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in labels))
    return lengths


def uninformative_probe(path) -> None:  # noqa: ANN001
    probe = ProbeMLP(H, 8)
    with torch.no_grad():
        for p in probe.parameters():
            p.zero_()
    ProbeBundle(probe, LAYER, LengthBins.uniform(8, 128), {"served": {"predict_every": 4}}).save(
        path
    )


def test_rows_join_captures_with_finished_labels_split_by_request(tmp_path):
    lengths = write_served(tmp_path)
    data = load_served(tmp_path, LAYER)
    finished = {r for r in lengths if not r.endswith("7")}
    assert set(data.ids) == finished  # aborted and unlabelled requests are left out
    assert np.all(data.remaining == data.lengths[data.request] - data.steps)
    assert np.allclose(data.vectors[:, 0], data.remaining / 128, atol=1e-2)  # layer 3's rows
    for split in ("train", "val", "test"):  # a request's rows are all in its split
        ids = {data.ids[i] for i in data.request[data.rows(split)]}
        assert all(split_of(r) == split for r in ids)
    assert data.count("test") > 20 and data.count("val") > 5


def test_retraining_ships_a_better_probe_and_refuses_a_worse_one(tmp_path):
    served, current = tmp_path / "served", tmp_path / "current"
    served.mkdir()
    write_served(served)
    uninformative_probe(current)
    base = ["train", "probe", "--from-served", str(served), "--current", str(current)]
    good = tmp_path / "good"
    res = runner.invoke(app, [*base, "--out", str(good), "--epochs", "20"])
    assert res.exit_code == 0, res.output
    report = json.loads((served / "retrain.json").read_text())
    assert report["shipped"] is True
    assert report["retrained"]["mae"] < 0.6 * report["current"]["mae"]
    assert report["retrained"]["kendall_tau"] > report["current"]["kendall_tau"]
    new, old = ProbeBundle.load(good), ProbeBundle.load(current)
    assert (new.layer, new.bins.to_list()) == (old.layer, old.bins.to_list())  # reloadable
    assert new.card["parent_version"] == old.version != new.version
    assert new.card["served"] == {"predict_every": 4}

    # against the good probe, an untrained one (0 epochs) must be refused and not written
    worse = tmp_path / "worse"
    res = runner.invoke(app, [*base[:-1], str(good), "--out", str(worse), "--epochs", "0"])
    assert res.exit_code == 1
    report = json.loads((served / "retrain.json").read_text())
    assert report["shipped"] is False and "refused" in report["verdict"]
    assert not worse.exists()


def test_verdict_needs_a_strictly_lower_held_out_mae():
    assert verdict({"retrained": {"mae": 9.0}, "current": {"mae": 10.0}})[0]
    assert not verdict({"retrained": {"mae": 10.0}, "current": {"mae": 10.0}})[0]


def write_profile(root, n: int = 60, seed: int = 1) -> None:  # noqa: ANN001
    """An original profile with the same signal as write_served's rows, at layers [1, 3]."""
    from trail.lab.learn.shards import write_manifest, write_shard
    from trail.lab.workload.sharegpt import split_of as profile_split

    rng = np.random.default_rng(seed)
    requests, parts = [], {"req": [], "steps": [], "labels": [], "vectors": []}
    for i in range(n):
        length = int(rng.integers(4, 120))
        steps = np.arange(0, length, EVERY)
        vec = rng.normal(0, 0.1, size=(len(steps), 2, H))
        vec[:, 1, 0], vec[:, 1, 1] = (length - steps) / 128, length / 128
        split = profile_split(i)
        requests.append({"index": i, "id": f"p{i}", "text": "t", "split": split, "length": length})
        parts["req"].append(np.full(len(steps), i))
        parts["steps"].append(steps)
        parts["labels"].append(length - steps)
        parts["vectors"].append(vec.astype(np.float16))
    root.mkdir(parents=True)
    write_shard(root, 0, requests, {k: np.concatenate(v) for k, v in parts.items()})
    settings = {"cap": 128, "model": "fake", "layers": [1, LAYER]}
    write_manifest(root, {"settings": settings, "done": [0], "seconds": {}})


def test_profile_rows_come_from_its_train_split_in_the_probes_input_form(tmp_path):
    from trail.lab.learn.served import profile_rows
    from trail.lab.learn.shards import load_profile

    write_profile(tmp_path / "profile")
    uninformative_probe(tmp_path / "current")
    bundle = ProbeBundle.load(tmp_path / "current")
    x, y = profile_rows(tmp_path / "profile", bundle, n=50)
    data = load_profile(tmp_path / "profile", [LAYER])
    train = data.split_rows("train")
    assert len(y) == 50 < len(train)
    assert x.shape == (50, bundle.inputs(torch.zeros(1, H), np.zeros(1)).shape[1])
    assert np.allclose(x[:, 0], y / 128, atol=1e-2)  # layer 3's rows, labels aligned
    assert set(np.round(y, 3)) <= set(np.round(data.labels[train], 3))


def test_retraining_can_mix_in_the_original_profile(tmp_path):
    served, current = tmp_path / "served", tmp_path / "current"
    served.mkdir()
    write_served(served, n=120)
    write_profile(tmp_path / "profile")
    uninformative_probe(current)
    out = tmp_path / "mixed"
    res = runner.invoke(
        app,
        [
            "train", "probe", "--from-served", str(served), "--current", str(current),
            "--out", str(out), "--epochs", "10", "--profile", str(tmp_path / "profile"),
            "--mix-profile", "40",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    card = ProbeBundle.load(out).card
    assert card["mixed_profile_rows"] == 40 and "mixing in 40 profile rows" in res.output
    report = json.loads((served / "retrain.json").read_text())
    assert report["requests"] == card["requests"]["test"]  # judged on served requests only
