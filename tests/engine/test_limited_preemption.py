"""Limited preemption that pays for itself, in the real engine (tiny model, CPU): the window is
capped by max_tokens, a swap is refused when its recompute costs more than it gains, a prefix
cache hit leaves the initial prediction unchanged, and `trail` with an informative probe
reorders and preempts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.engine import base_id, read_events


def _ids(tok, text):
    from trail.models.chat import chat_prompt_ids

    return chat_prompt_ids(tok, text)


@pytest.fixture
def tok(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_path))


def _engine(tiny_path, trail: dict, **kw) -> dict:
    return {"model": str(tiny_path), "dtype": "float32", "max_num_seqs": 1, "trail": trail, **kw}


def _preempted(dump) -> list[dict]:
    return [e for e in read_events(dump) if e["event"] == "preempted"]


@pytest.mark.engine
def test_window_is_c_times_the_prediction_capped_by_max_tokens(
    tiny_path, run_scenario, tmp_path, tok
):
    """Predicted 1000 tokens but max_tokens 100, c = 0.5: preemptible for 50 tokens, not 500."""
    dump = tmp_path / "window.jsonl"
    trail = {"policy": "trail-prompt", "c": 0.5, "margin_tokens": 4, "dump_path": str(dump)}

    def req(rid, text, n, pred, at):
        extra = {"trail": {"initial_pred": pred}}
        return {
            "id": rid,
            "prompt_ids": _ids(tok, text),
            "params": {"max_tokens": n, "ignore_eos": True, "extra_args": extra},
            "at_step": at,
        }

    phase = [
        req("long", "Write a long essay about rivers.", 100, 1000.0, 0),
        req("early", "Hi", 4, 4.0, 15),  # long has ~15 tokens <= 50: preempts
        req("late", "Yo", 4, 4.0, 75),  # long has > 50 tokens: waits, though 0.5 x 1000 = 500
    ]
    res = run_scenario(_engine(tiny_path, trail), [phase])
    preempted = _preempted(dump)
    assert [base_id(e["id"]) for e in preempted] == ["long"], preempted
    assert preempted[0]["generated"] <= 50
    assert res["early"]["finish_step"] < res["long"]["finish_step"]
    assert res["late"]["first_token_step"] > res["long"]["finish_step"], "late must wait"


@pytest.mark.engine
def test_swap_refused_when_recompute_costs_more_than_it_gains(
    tiny_path, run_scenario, tmp_path, tok
):
    """Prefix caching off, so a preemption recomputes everything the victim computed. With the
    step cost pinned so that a recomputed token costs a whole step, no swap pays; with prefill
    nearly free, the same arrival preempts."""
    long_prompt = _ids(tok, "Summarise this text. " + "The river runs to the sea. " * 40)
    phase = [
        {
            "id": "long",
            "prompt_ids": long_prompt,
            "params": {"max_tokens": 120, "ignore_eos": True},
        },
        {
            "id": "short",
            "prompt_ids": _ids(tok, "Hi"),
            "params": {"max_tokens": 4, "ignore_eos": True},
            "at_step": 10,
        },
    ]
    counts = {}
    for name, per_token in {"dear": 1.0, "cheap": 1e-9}.items():
        dump = tmp_path / f"{name}.jsonl"
        cost = {"base_s": 0.01, "per_prefill_token_s": per_token, "per_decode_seq_s": 0.001}
        trail = {"policy": "trail-oracle", "dump_path": str(dump), "step_cost": cost}
        res = run_scenario(_engine(tiny_path, trail, enable_prefix_caching=False), [phase])
        counts[name] = len(_preempted(dump))
        assert len(res["long"]["token_ids"]) == 120
    assert counts == {"dear": 0, "cheap": 1}, counts


@pytest.mark.engine
def test_prefix_cache_hit_gives_the_same_initial_prediction(tiny_path, run_scenario, tmp_path, tok):
    """The step-0 probe input is the last prompt token's state, computed even on a cache hit."""
    dump = tmp_path / "cache.jsonl"
    trail = {
        "policy": "fcfs",
        "layer": 1,
        "capture": True,
        "ship_vectors": True,
        "dump_path": str(dump),
    }
    prompt = _ids(tok, "Tell me about the moon. " * 12)  # several full KV blocks
    params = {"max_tokens": 3, "ignore_eos": True}
    phases = [[{"id": "first", "prompt_ids": prompt, "params": params}]]
    phases.append([{"id": "again", "prompt_ids": prompt, "params": params}])
    res = run_scenario(_engine(tiny_path, trail, block_size=32), phases)
    assert res["first"]["num_cached_tokens"] == 0
    assert res["again"]["num_cached_tokens"] >= 32, "the second run must hit the prefix cache"
    step0 = {
        base_id(e["id"]): np.asarray(e["vector"])
        for e in read_events(dump)
        if e["event"] == "probe" and e["at"] == 0
    }
    np.testing.assert_allclose(step0["again"], step0["first"], rtol=1e-4, atol=1e-5)


def _fit_probe(events: list[dict], lengths: dict[str, int], path):
    """A probe fitted to this workload's own rows (first pass): informative by construction."""
    from trail.lab.learn.train import Recipe, train_classifier
    from trail.predict.bins import LengthBins
    from trail.predict.probe import ProbeBundle, ProbeMLP

    rows = [e for e in events if e["event"] == "probe" and e["vector"] is not None]
    x = np.array([e["vector"] for e in rows], dtype=np.float32)
    y = np.array([lengths[base_id(e["id"])] - e["at"] for e in rows])
    bins = LengthBins.uniform(8, 128)
    recipe = Recipe(epochs=80, batch=16, lr=0.003)
    res = train_classifier(ProbeMLP(x.shape[1], bins.k), x, y, x, y, bins, recipe, progress=False)
    assert res.val_mae < 12, f"the probe could not fit the workload (MAE {res.val_mae:.1f})"
    ProbeBundle(res.model, 1, bins, {"note": "fitted to the test workload"}).save(path)
    return path


@pytest.mark.engine
@pytest.mark.timeout(1800)
def test_trail_with_an_informative_probe_reorders_and_preempts(
    tiny_path, run_scenario, tmp_path, tok
):
    lengths = {"a": 90, "b": 6, "c": 70, "d": 5, "e": 8}
    texts = {"a": "Tell a long story.", "b": "Hi", "c": "Explain rain.", "d": "Yo", "e": "Ok"}
    at = {"a": 0, "b": 12, "c": 1, "d": 14, "e": 16}

    def phase():
        return [
            {
                "id": rid,
                "prompt_ids": _ids(tok, texts[rid]),
                # no prompt prediction: every request starts at the same default guess (30)
                "params": {"max_tokens": n, "ignore_eos": True},
                "at_step": at[rid],
            }
            for rid, n in lengths.items()
        ]

    first = tmp_path / "fcfs.jsonl"
    capture = {"policy": "fcfs", "layer": 1, "capture": True, "ship_vectors": True}
    fcfs = run_scenario(
        _engine(tiny_path, {**capture, "dump_path": str(first)}, max_num_seqs=2), [phase()]
    )
    probe = _fit_probe(read_events(first), lengths, tmp_path / "fitted-probe")
    dump = tmp_path / "trail.jsonl"
    trail = {
        "policy": "trail",
        "probe_path": str(probe),
        "predict_every": 1,
        "default_prediction": 30.0,  # below what the probe says of the long ones
        "margin_tokens": 8.0,  # these answers are < 100 tokens: the served 256 would never swap
        "dump_path": str(dump),
    }
    res = run_scenario(_engine(tiny_path, trail, max_num_seqs=2), [phase()])
    assert {r: v["token_ids"] for r, v in res.items()} == {
        r: v["token_ids"] for r, v in fcfs.items()
    }
    policy = [e for e in _preempted(dump) if e["reason"] == "policy"]
    assert policy, "an informative probe must make trail preempt a long request for a short one"
    assert {base_id(e["id"]) for e in policy} <= {"a", "c"}
    # the short ones, arriving behind two long ones, finish before them (FCFS: after one)
    for short in ("b", "d", "e"):
        assert res[short]["finish_step"] < min(res["a"]["finish_step"], res["c"]["finish_step"])
    assert fcfs["e"]["finish_step"] > min(fcfs["a"]["finish_step"], fcfs["c"]["finish_step"])
