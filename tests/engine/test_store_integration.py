"""Requests served by the TRAIL scheduler leave complete records in a real Redis."""

from __future__ import annotations

import pytest

from tests.support.redis_server import redis_server, redis_server_binary

N_OUT, EVERY = 12, 2


@pytest.mark.engine
@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed (make setup)")
def test_scheduler_writes_complete_records(tiny_path, known_probe, run_scenario):
    from transformers import AutoTokenizer

    from trail.models.chat import chat_prompt_ids
    from trail.store import StoreReader

    tok = AutoTokenizer.from_pretrained(str(tiny_path))
    texts = ["First question?", "Second, longer question about things?", "Third."]
    with redis_server() as redis:
        engine = {
            "model": str(tiny_path),
            "dtype": "float32",
            "trail": {
                "policy": "trail",
                "probe_path": str(known_probe),
                "predict_every": EVERY,
                "redis_url": redis.url,
                "replica": "r0",
            },
        }
        arrivals = [
            {
                "id": f"s{i}",
                "prompt_ids": chat_prompt_ids(tok, t),
                "params": {"max_tokens": N_OUT, "ignore_eos": True},
            }
            for i, t in enumerate(texts)
        ]
        run_scenario(engine, [arrivals])
        reader = StoreReader.from_url(redis.url)
        records = [reader.get(f"s{i}") for i in range(len(texts))]
        keys = redis.client().keys("*")

    from trail.predict.probe import ProbeBundle

    version = ProbeBundle.load(known_probe).version
    for rec, text in zip(records, texts, strict=True):
        assert rec is not None
        assert rec["replica"] == "r0" and rec["policy"] == "trail"
        assert rec["probe_version"] == version  # the probe that refined it (hot reload)
        assert rec["true_length"] == N_OUT and rec["finish_reason"] == "length"
        assert rec["prompt_tokens"] == len(chat_prompt_ids(tok, text))
        assert rec["arrival_ts"] <= rec["first_token_ts"] <= rec["finish_ts"]
        steps = [p["step"] for p in rec["trajectory"]]
        # the prefill prediction (step 0) and one every EVERY decode steps
        assert steps == list(range(0, N_OUT, EVERY))
        assert all(p["expected_remaining"] > 0 for p in rec["trajectory"])
    assert not any(text.encode() in k for k in keys for text in texts), "prompt text stored"
