"""A synthetic request's full lifecycle against a real redis-server (started by the fixture)."""

from __future__ import annotations

import time

from trail.store import PredictionStore, online_accuracy, prompt_hash

PROMPT = "Explain shortest-job-first scheduling to a five-year-old, please."
ENGINE_ID = "chatcmpl-42-0badf00d"  # vLLM appends "-" + 8 hex chars
BASE_ID = "chatcmpl-42"


def _lifecycle(store: PredictionStore, request_id: str, *, true_length: int = 12) -> float:
    t0 = time.time()
    store.arrival(
        request_id,
        replica="replica-a",
        policy="trail",
        prompt_tokens=17,
        prompt_hash=prompt_hash(PROMPT),
        initial_dist=[0.25, 0.5, 0.25],
        initial_expected=20.0,
        ts=t0,
    )
    store.first_token(request_id, ts=t0 + 0.1)
    for step in range(1, true_length):
        store.step(
            request_id,
            step=step,
            expected_remaining=float(true_length - step + 2),
            dist=[0.1, 0.9, 0.0],
        )
        if step == 4:
            store.preempted(request_id, reason="policy", step=step, ts=t0 + 0.2)
    store.first_token(request_id, ts=t0 + 9.0)  # a resumed request must not move TTFT
    store.finished(request_id, true_length=true_length, finish_reason="stop", ts=t0 + 1.0)
    return t0


def test_full_lifecycle_gives_complete_record(redis_srv):
    store = PredictionStore(redis_srv.url, ttl_s=600, flush_interval_s=0.01)
    try:
        t0 = _lifecycle(store, ENGINE_ID)
        assert store.flush(5.0)
        record = store.get(ENGINE_ID)
    finally:
        store.close()
    assert record is not None
    expected = {
        "request_id": ENGINE_ID,
        "replica": "replica-a",
        "policy": "trail",
        "prompt_tokens": 17,
        "prompt_hash": prompt_hash(PROMPT),
        "initial_expected": 20.0,
        "initial_dist": [0.25, 0.5, 0.25],
        "arrival_ts": t0,
        "first_token_ts": t0 + 0.1,
        "finish_ts": t0 + 1.0,
        "true_length": 12,
        "finish_reason": "stop",
        "n_preemptions": 1,
    }
    assert {k: record[k] for k in expected} == expected
    assert [p["step"] for p in record["trajectory"]] == list(range(1, 12))
    assert [p["expected_remaining"] for p in record["trajectory"]] == [
        float(12 - s + 2) for s in range(1, 12)
    ]
    assert all(p["dist"] is None for p in record["trajectory"])  # store_distributions=False
    assert record["preemptions"] == [{"reason": "policy", "step": 4, "ts": t0 + 0.2}]
    assert 0 < record["ttl_s"] <= 600


def test_ttl_on_every_key_and_no_prompt_text(redis_srv):
    store = PredictionStore(redis_srv.url, ttl_s=300, flush_interval_s=0.01)
    try:
        _lifecycle(store, ENGINE_ID)
        assert store.flush(5.0)
    finally:
        store.close()
    client = redis_srv.client()
    keys = list(client.scan_iter("*"))
    assert len(keys) >= 5  # record, trajectory, preemptions, alias, finished index
    for key in keys:
        assert 0 < client.ttl(key) <= 300, key
        dump = client.dump(key) or b""
        assert PROMPT.encode() not in dump and b"five-year-old" not in dump


def test_get_accepts_id_without_engine_suffix_and_recent(redis_srv):
    store = PredictionStore(redis_srv.url, flush_interval_s=0.01)
    try:
        _lifecycle(store, ENGINE_ID)
        _lifecycle(store, "other-1", true_length=5)
        assert store.flush(5.0)
        assert store.get(BASE_ID)["request_id"] == ENGINE_ID
        assert store.get("no-such-request") is None
        recent = store.recent(10)
    finally:
        store.close()
    assert [r["request_id"] for r in recent] == ["other-1", ENGINE_ID] or len(recent) == 2
    summary = online_accuracy(recent)
    assert summary["n_requests"] == 2
    assert summary["initial_mae"] == (abs(20 - 12) + abs(20 - 5)) / 2
    assert summary["refined_mae"] == 2.0  # every point over-predicts by exactly 2


def test_distributions_stored_when_enabled(redis_srv):
    store = PredictionStore(redis_srv.url, flush_interval_s=0.01, store_distributions=True)
    try:
        _lifecycle(store, "with-dists", true_length=4)
        assert store.flush(5.0)
        record = store.get("with-dists")
    finally:
        store.close()
    assert [p["dist"] for p in record["trajectory"]] == [[0.1, 0.9, 0.0]] * 3
