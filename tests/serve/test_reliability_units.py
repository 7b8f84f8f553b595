"""Unit checks behind the hostile-input and disconnect tests (no Ray, no engine)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from trail.engine.load import EngineLoad, LoadPublisher, read_load
from trail.engine.tracking import initial_from_request
from trail.predict.bins import LengthBins
from trail.serve.errors import OpenAIError
from trail.serve.schemas import ChatCompletionRequest
from trail.serve.validation import parse_body, read_body


def load(running: int) -> EngineLoad:
    return EngineLoad(0.0, 0, running, 0, 0.0, kv_free_blocks=10, kv_total_blocks=10)


def test_going_idle_is_always_published(tmp_path):
    path = tmp_path / "load.json"
    pub, seen = LoadPublisher(str(path), period_s=3600), []
    pub.maybe_publish(lambda: load(2), seen.append)  # first: published
    pub.maybe_publish(lambda: load(1), seen.append)  # within the period: skipped
    pub.maybe_publish(lambda: load(0), seen.append, idle=True)  # went idle: published
    pub.maybe_publish(lambda: load(0), seen.append, idle=True)  # still idle: skipped
    assert [x.running for x in seen] == [2, 0]
    last = read_load(path, max_age_s=float("inf"))
    assert last is not None and last.running == 0 and last.kv_free_blocks == 10


def test_old_load_files_without_kv_fields_still_read(tmp_path):
    path = tmp_path / "load.json"
    old = {"predicted_remaining_tokens": 1.0, "prefill_tokens_pending": 0, "running": 1}
    path.write_text(json.dumps({**old, "waiting": 0, "ts": 0.0}))
    assert read_load(path, max_age_s=float("inf")).kv_total_blocks == -1


def test_a_distribution_over_other_bins_does_not_break_the_scheduler():
    """A prompt predictor with 10 bins beside a probe with 8 killed the EngineCore."""
    bins = LengthBins.uniform(8, 128)
    extra = {"trail": {"initial_dist": [0.1] * 10, "initial_pred": 42.0}}
    sp = SimpleNamespace(extra_args=extra, max_tokens=16, ignore_eos=False)
    t = initial_from_request(SimpleNamespace(request_id="r", sampling_params=sp), bins, 99.0, 0.0)
    assert t.length.initial_pred == 42.0 and t.posterior is None


class FakeRequest:
    def __init__(self, body: bytes, declared: bool) -> None:
        self.body = body
        self.headers = {"content-length": str(len(body))} if declared else {}

    async def stream(self):  # noqa: ANN201
        for i in range(0, len(self.body), 1000):
            yield self.body[i : i + 1000]


@pytest.mark.parametrize("declared", [True, False])
def test_read_body_refuses_past_the_limit(declared):
    assert asyncio.run(read_body(FakeRequest(b"x" * 2048, declared), 4096)) == b"x" * 2048
    with pytest.raises(OpenAIError) as info:
        asyncio.run(read_body(FakeRequest(b"x" * 5000, declared), 4096))
    assert info.value.status == 413 and info.value.code == "request_too_large"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "top_p": NaN}',
        b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "x": 1e999}',
    ],
    ids=["deep", "lone-surrogate", "NaN", "overflow"],
)
def test_parse_body_turns_hostile_json_into_400(raw):
    with pytest.raises(OpenAIError) as info:
        parse_body(raw, ChatCompletionRequest)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "over",
    [
        {"stop": ""},
        {"stop": ["a", ""]},
        {"seed": 2**64},
        {"repetition_penalty": float("inf")},
        {"trail": {"true_len": 2**40}},
    ],
)
def test_values_vllm_would_reject_are_400(over):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "x"}], **over}
    with pytest.raises(OpenAIError) as info:
        parse_body(json.dumps(body).encode(), ChatCompletionRequest)
    assert info.value.status == 400
