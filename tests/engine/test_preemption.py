"""Limited preemption in the real engine: a short request preempts a long one early; once the
long one is older than c x its initial prediction it is protected; the preempted request still
completes with the same text as when it ran alone."""

from __future__ import annotations

import pytest

from tests.support.engine import base_id, read_events

LONG, C = 120, 0.5  # the long request is preemptible for its first 60 tokens


def _prompt(tok, text):
    from trail.models.chat import chat_prompt_ids

    return chat_prompt_ids(tok, text)


@pytest.mark.engine
def test_short_preempts_long_early_but_not_late(tiny_path, run_scenario, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_path))
    dump = tmp_path / "events.jsonl"
    engine = {
        "model": str(tiny_path),
        "dtype": "float32",
        "max_num_seqs": 1,  # one running slot: every arrival competes for it
        "trail": {"policy": "trail-oracle", "c": C, "margin_tokens": 4, "dump_path": str(dump)},
    }
    long_ids = _prompt(tok, "Write a long essay about rivers.")
    oracle = {"ignore_eos": True}
    phases = [
        [{"id": "alone", "prompt_ids": long_ids, "params": {"max_tokens": LONG, **oracle}}],
        [
            {"id": "long", "prompt_ids": long_ids, "params": {"max_tokens": LONG, **oracle}},
            # arrives when long has ~10 tokens (age 10 <= 0.5 x 120): preempts it
            {
                "id": "early",
                "prompt_ids": _prompt(tok, "Hi"),
                "params": {"max_tokens": 5, **oracle},
                "at_step": 10,
            },
            # arrives when long has ~80 tokens (age > 60): must wait
            {
                "id": "late",
                "prompt_ids": _prompt(tok, "Yo"),
                "params": {"max_tokens": 5, **oracle},
                "at_step": 90,
            },
        ],
    ]
    res = run_scenario(engine, phases)

    preempted = [e for e in read_events(dump) if e["event"] == "preempted"]
    assert [base_id(e["id"]) for e in preempted] == ["long"], preempted
    assert preempted[0]["reason"] == "policy"
    assert preempted[0]["generated"] <= C * LONG

    assert res["early"]["finish_step"] < res["long"]["finish_step"], "short one ran first"
    assert res["late"]["first_token_step"] > res["long"]["finish_step"], "late short one waited"
    assert res["long"]["token_ids"] == res["alone"]["token_ids"], "preemption changed the text"
    assert len(res["long"]["token_ids"]) == LONG
