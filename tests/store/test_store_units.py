"""Pure helpers: prompt hashing, engine-id suffixes, record decoding, online accuracy."""

from __future__ import annotations

import hashlib

import pytest

from trail.store import online_accuracy, prompt_hash, strip_engine_suffix


def test_prompt_hash_is_sha256_hex_and_separates_text_from_ids():
    h = prompt_hash("hello")
    assert h == hashlib.sha256(b"text:hello").hexdigest()
    assert prompt_hash([1, 2, 3]) == prompt_hash((1, 2, 3)) != prompt_hash("1,2,3")
    assert prompt_hash([1, 2, 3]) != prompt_hash([1, 2, 4])
    assert len(h) == 64 and "hello" not in h


@pytest.mark.parametrize(
    ("request_id", "base"),
    [
        ("chatcmpl-abc-0123abcd", "chatcmpl-abc"),
        ("req-1-deadbeef", "req-1"),
        ("no-suffix", None),
        ("UPPER-DEADBEEF", None),  # vLLM's suffix is lowercase hex
        ("-0123abcd", None),
    ],
)
def test_strip_engine_suffix(request_id, base):
    assert strip_engine_suffix(request_id) == base


def test_online_accuracy_pools_points_and_skips_unfinished():
    records = [
        {  # initial error 10; refined errors |8-(10-1)|=1, |5-(10-5)|=0
            "request_id": "a",
            "initial_expected": 20.0,
            "true_length": 10,
            "trajectory": [
                {"step": 1, "expected_remaining": 8.0},
                {"step": 5, "expected_remaining": 5.0},
            ],
        },
        {  # initial error 2; refined |1-(4-2)|=1
            "request_id": "b",
            "initial_expected": 2.0,
            "true_length": 4,
            "trajectory": [{"step": 2, "expected_remaining": 1.0}],
        },
        {"request_id": "running", "initial_expected": 5.0, "trajectory": []},
    ]
    summary = online_accuracy(records)
    assert summary["n_requests"] == 2
    assert summary["skipped_unfinished"] == 1
    assert summary["n_points"] == 3
    assert summary["initial_mae"] == 6.0
    assert summary["refined_mae"] == pytest.approx(2 / 3)
    assert summary["refined_mae_per_request"] == pytest.approx((0.5 + 1.0) / 2)


def test_online_accuracy_of_nothing_is_empty_not_an_error():
    assert online_accuracy([])["initial_mae"] is None


def test_online_accuracy_caps_by_max_tokens_and_ranks_against_the_constant():
    records = [  # predictions above max_tokens are capped before any error is taken
        {
            "request_id": "a",
            "initial_expected": 900.0,
            "max_tokens": 100,
            "true_length": 100,
            "trajectory": [{"step": 10, "expected_remaining": 500.0}],
        },
        {
            "request_id": "b",
            "initial_expected": 20.0,
            "max_tokens": 100,
            "true_length": 10,
            "trajectory": [{"step": 5, "expected_remaining": 5.0}],
        },
        {
            "request_id": "c",
            "initial_expected": 50.0,
            "max_tokens": 100,
            "true_length": 40,
            "trajectory": [{"step": 5, "expected_remaining": 30.0}],
        },
    ]
    s = online_accuracy(records, train_lengths=[30, 30, 30])
    assert s["initial_mae"] == pytest.approx((0 + 10 + 10) / 3)  # 900 -> 100
    assert s["refined_mae"] == pytest.approx((0 + 0 + 5) / 3)  # 500 -> 90 = 100 - 10
    assert s["initial_tau"] == pytest.approx(1.0) and s["initial_pairwise"] == 1.0
    # constant: median 30 at g = 0; at g = 5 and 10 the survivors have 25 and 20 left
    assert s["constant_initial_mae"] == pytest.approx((70 + 20 + 10) / 3)
    assert s["constant_refined_mae"] == pytest.approx(
        (abs(20 - 90) + abs(25 - 5) + abs(25 - 35)) / 3
    )


def test_the_record_ttl_is_a_setting_of_the_engine():
    """The soak (ops/soak) needs records that expire in minutes to see Redis memory level off;
    `engine.trail.store_ttl_s` reaches the store's writer (default one day)."""
    from trail.engine.observers import SchedulerObserver
    from trail.engine.trail_config import TrailConfig

    assert TrailConfig(policy="fcfs").store_ttl_s == 86400
    cfg = TrailConfig(policy="fcfs", redis_url="redis://127.0.0.1:1/0", store_ttl_s=60)
    observer = SchedulerObserver(cfg)
    assert observer.store is not None
    try:
        assert observer.store._encoder.ttl_s == 60
    finally:
        observer.store.close()
