"""Prefill-to-rank on the real vLLM engine (CPU, tiny model): arrivals are prefilled in the
ranking lane while the decode batch is full, parked with their KV in the prefix cache, and
resumed by rank with a cache hit. The policy's choices themselves: tests/policy/test_lane.py."""

from __future__ import annotations

import pytest

from tests.support.engine import base_id, read_events

NO_CAP = {"trail": {"use_max_tokens": False}}
BLOCK = 32  # vLLM's CPU attention needs a multiple of 32


@pytest.fixture
def tok(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_path))


def _req(tok, rid: str, text: str, n: int, at: int) -> dict:
    from trail.models.chat import chat_prompt_ids

    return {
        "id": rid,
        "prompt_ids": chat_prompt_ids(tok, text),
        # rank by the prediction alone, not capped by max_tokens (all would tie at n - 1)
        "params": {"max_tokens": n, "ignore_eos": True, "extra_args": NO_CAP},
        "at_step": at,
    }


@pytest.mark.engine
def test_arrivals_are_ranked_parked_and_resumed_from_the_prefix_cache(
    tiny_path, run_scenario, tmp_path, tok
):
    dump = tmp_path / "lane.jsonl"
    trail = {
        "policy": "trail",
        "probe_path": str(write_seeded_probe(tmp_path)),
        "rank_lane_seqs": 1,
        "c": 0,  # no policy preemption: every preemption below is the lane's
        "dump_path": str(dump),
    }
    engine = {
        "model": str(tiny_path),
        "dtype": "float32",
        "max_num_seqs": 1,  # one decode slot; the lane adds one more sequence to vLLM
        "block_size": BLOCK,
        "trail": trail,
    }
    topics = ["rivers", "volcanoes", "tides"]
    phase = [_req(tok, "long", "Write a long essay about mountains.", 60, 0)]
    ask = "Tell me three facts about {}. " + "Answer carefully, briefly and plainly. " * 12
    phase += [_req(tok, t, ask.format(t), 8, 3) for t in topics]  # prompts of 3+ KV blocks
    res = run_scenario(engine, [phase])
    events = read_events(dump)

    parks = [e for e in events if e["event"] == "preempted" and e["reason"] == "park"]
    assert {base_id(e["id"]) for e in parks} == set(topics), parks
    assert all(e["generated"] == 1 for e in parks), "parked right after the prefill step"
    assert not [e for e in events if e["event"] == "preempted" and e["reason"] != "park"]
    for t in topics:  # ranked (first token) while the long one still held the decode slot
        assert res[t]["first_token_step"] < res["long"]["finish_step"]
        assert res[t]["finish_step"] > res["long"]["finish_step"]  # ... but waited for it
        assert res[t]["second_token_s"] > res[t]["first_token_s"]
    # never more than one decode sequence beside the one lane seat
    steps = [e for e in events if e["event"] == "step"]
    assert max(e["decode_seqs"] for e in steps) <= 2
    # a resume is a prefix-cache hit: the steps prefilled each prompt once, plus at most the
    # partial last block of each parked request
    prompts = sum(len(a["prompt_ids"]) for a in phase)
    assert min(len(a["prompt_ids"]) for a in phase[1:]) > 3 * BLOCK
    prefilled = sum(e["prefill_tokens"] for e in steps)
    assert prompts <= prefilled <= prompts + len(parks) * (BLOCK + 1), (prefilled, prompts)
    # the event log scores the waiting queue: each topic entered the lane once, then decode
    admitted = [e for e in events if e["event"] == "admitted" and base_id(e["id"]) in topics]
    assert sorted(base_id(e["id"]) for e in admitted if e["lane"]) == sorted(topics)
    to_decode = [base_id(e["id"]) for e in admitted if not e["lane"]]
    assert sorted(to_decode) == sorted(topics)
    # resumed by the probe's rank: the parked requests finish in order of their rank at park
    rank_at_park = {base_id(e["id"]): park_rank(events, e) for e in parks}
    by_rank = sorted(topics, key=lambda t: rank_at_park[t])
    assert sorted(topics, key=lambda t: res[t]["finish_step"]) == by_rank, rank_at_park
    assert to_decode == by_rank


def park_rank(events: list[dict], park: dict) -> float:
    """The refined prediction the request held when it was parked (its step-0 probe output)."""
    probes = [
        e
        for e in events
        if e["event"] == "probe" and e["id"] == park["id"] and e["expected"] is not None
    ]
    return probes[0]["expected"]


def write_seeded_probe(tmp_path):
    from tests.support.known_probe import write_known_probe

    return write_known_probe(tmp_path / "seeded-probe", seed=3)


def test_the_lane_seats_come_on_top_of_the_decode_batch_a_user_sized():
    from trail.engine.engine_config import EngineConfig
    from trail.engine.trail_config import TrailConfig

    lane = EngineConfig(max_num_seqs=16, trail=TrailConfig(policy="trail", rank_lane_seqs=2))
    assert lane.engine_kwargs()["max_num_seqs"] == 18
    plain = EngineConfig(max_num_seqs=16, trail=TrailConfig(policy="trail"))
    assert plain.engine_kwargs()["max_num_seqs"] == 16
    with pytest.raises(ValueError, match="ranking lane"):
        TrailConfig(policy="fcfs", rank_lane_seqs=2).policy_config()


@pytest.mark.engine
def test_under_kv_pressure_parked_requests_give_way_before_running_ones(
    tiny_path, run_scenario, tmp_path, tok
):
    """16 KV blocks: the long request grows into the blocks the parked requests left cached,
    and vLLM evicts those (free, cached) before it would preempt anyone running."""
    dump = tmp_path / "pressure.jsonl"
    trail = {
        "policy": "trail",
        "probe_path": str(write_seeded_probe(tmp_path)),
        "rank_lane_seqs": 1,
        "c": 0,
        "dump_path": str(dump),
    }
    engine = {
        "model": str(tiny_path),
        "dtype": "float32",
        "max_num_seqs": 1,
        "block_size": BLOCK,
        "trail": trail,
        "max_model_len": 448,  # vLLM checks one full-length request fits the cache
        "extra": {"num_gpu_blocks_override": 16},  # 512 tokens in all
    }
    topics = ["rivers", "volcanoes", "tides"]
    phase = [_req(tok, "long", "Write a long essay about mountains.", 320, 0)]
    ask = "Tell me three facts about {}. " + "Answer carefully, briefly and plainly. " * 12
    phase += [_req(tok, t, ask.format(t), 8, 3) for t in topics]
    res = run_scenario(engine, [phase])
    events = read_events(dump)

    reasons = [e["reason"] for e in events if e["event"] == "preempted"]
    assert reasons.count("park") == len(topics)
    assert "kv_pressure" not in reasons, "a running request was preempted for memory"
    assert len(res["long"]["token_ids"]) == 320
    assert all(len(res[t]["token_ids"]) == 8 for t in topics)
    # the long one's growth took the parked requests' cached blocks: resuming them
    # recomputed more than their partial last blocks
    steps = [e for e in events if e["event"] == "step"]
    prompts = sum(len(a["prompt_ids"]) for a in phase)
    assert sum(e["prefill_tokens"] for e in steps) > prompts + len(topics) * (BLOCK + 1)
