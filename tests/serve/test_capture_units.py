"""The replica's half of served capture, without Ray: sampling, labels, capture off (issue 19)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from trail.serve.capture import ServedCapture, read_labels, sampled
from trail.serve.config import ServeConfig
from trail.serve.llm_server import engine_config_for_replica


def config(tmp_path, fraction: float) -> ServeConfig:
    return ServeConfig.model_validate(
        {
            "capture": {"fraction": fraction, "dir": str(tmp_path / "cap")},
            "engine": {"trail": {"policy": "fcfs"}},
        }
    )


def test_sampling_is_stable_per_request_and_near_the_fraction():
    ids = [f"req-{i}" for i in range(4000)]
    picked = [i for i in ids if sampled(i, 0.25)]
    assert 0.22 < len(picked) / len(ids) < 0.28
    assert picked == [i for i in ids if sampled(i, 0.25)]  # the same requests every time
    assert not any(sampled(i, 0.0) for i in ids)
    assert all(sampled(i, 1.0) for i in ids)


def test_capture_off_configures_and_writes_nothing(tmp_path):
    cfg = config(tmp_path, 0.0)
    assert ServedCapture.from_config(cfg, "r1") is None
    engine = engine_config_for_replica(cfg, "r1", tmp_path / "load.json")
    assert engine.trail.capture_dir is None
    assert not (tmp_path / "cap").exists()


def test_capture_on_points_the_worker_sink_at_the_folder_with_its_bounds(tmp_path):
    cfg = config(tmp_path, 0.5)
    engine = engine_config_for_replica(cfg, "r1", tmp_path / "load.json")
    assert engine.trail.capture_dir == str(tmp_path / "cap")
    assert engine.trail.capture_quota_mb == cfg.capture.quota_mb
    assert engine.trail.capture_queue_rows == cfg.capture.queue_rows > 0  # never on the step


def test_capture_needs_the_trail_engine():
    with pytest.raises(ValidationError, match="capture needs the TRAIL engine"):
        ServeConfig.model_validate({"capture": {"fraction": 0.1}, "engine": {"trail": None}})


def test_a_finished_request_gets_one_label_and_a_torn_line_is_skipped(tmp_path):
    cap = ServedCapture.from_config(config(tmp_path, 1.0), "r1")
    assert cap is not None
    assert cap.extra("abc") == {"capture_id": "abc", "capture_every": 4}
    cap.label("abc", 17, "stop", 64, 3, "v1")
    with cap.labels.open("a") as f:
        f.write('{"id": "torn", "len')  # a replica killed mid-write
    labels = read_labels(tmp_path / "cap")
    assert list(labels) == ["abc"]
    row = labels["abc"]
    assert (row["length"], row["finish_reason"], row["max_tokens"]) == (17, "stop", 64)
    assert (row["prompt_tokens"], row["probe_version"]) == (3, "v1")
    assert "prompt" not in json.dumps(row).replace("prompt_tokens", "")  # never the text


class FakeEngine:
    """What vLLM's handlers call: generate() streaming deltas; any other attribute passes."""

    model_config = "the engine's"

    def __init__(self) -> None:
        self.seen: list = []
        self.aborted: list = []

    async def abort(self, request_ids):  # noqa: ANN001, ANN201
        self.aborted += request_ids

    async def generate(self, prompt, params, request_id, **kw):  # noqa: ANN001, ANN201
        from types import SimpleNamespace

        self.seen.append(params)
        for i in range(3):
            out = SimpleNamespace(token_ids=[7, 8], finish_reason="length" if i == 2 else None)
            yield SimpleNamespace(
                outputs=[out], finished=i == 2, prompt_token_ids=[1, 2, 3, 4] if i == 0 else None
            )


def drain(engine, params, rid: str) -> int:  # noqa: ANN001
    import asyncio

    async def go() -> int:
        return len([o async for o in engine.generate({"prompt": "x"}, params, rid)])

    return asyncio.run(go())


def test_the_tracked_engine_adds_capture_settings_and_writes_the_label(tmp_path):
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from trail.serve.tracked_engine import TrackedEngine

    fake = FakeEngine()
    cap = ServedCapture.from_config(config(tmp_path, 1.0), "r1")
    engine = TrackedEngine(fake, cap, lambda: "v7")
    assert engine.model_config == "the engine's"  # everything else goes to the engine
    params = SamplingParams(
        max_tokens=6,
        output_kind=RequestOutputKind.DELTA,
        extra_args={"trail": {"initial_pred": 5.0}},
    )
    assert drain(engine, params, "chatcmpl-a") == 3
    sent = fake.seen[0].extra_args["trail"]
    assert sent == {"initial_pred": 5.0, "capture_id": "chatcmpl-a", "capture_every": 4}
    assert params.extra_args == {"trail": {"initial_pred": 5.0}}  # the caller's copy untouched
    row = read_labels(tmp_path / "cap")["chatcmpl-a"]
    assert (row["length"], row["finish_reason"], row["max_tokens"]) == (6, "length", 6)
    assert (row["prompt_tokens"], row["probe_version"]) == (4, "v7")
    two = SamplingParams(max_tokens=6, n=2, output_kind=RequestOutputKind.DELTA)
    drain(engine, two, "chatcmpl-b")  # n > 1: not captured (one capture id for two choices)
    assert "chatcmpl-b" not in read_labels(tmp_path / "cap")
    assert not (fake.seen[1].extra_args or {}).get("trail")


def test_without_capture_the_tracked_engine_passes_requests_through(tmp_path):
    from vllm import SamplingParams

    from trail.serve.tracked_engine import TrackedEngine

    fake = FakeEngine()
    params = SamplingParams(max_tokens=6)
    assert drain(TrackedEngine(fake, None, lambda: None), params, "x") == 3
    assert fake.seen[0] is params and not (tmp_path / "cap").exists()


def test_the_tracked_engine_aborts_only_what_a_call_left_generating():
    """A stream abandoned mid-way (its generator neither finished nor closed, as when a handler
    several levels up is dropped) is aborted by id; finished or closed ones are not."""
    import asyncio

    from vllm import SamplingParams

    from trail.serve.tracked_engine import TrackedEngine

    fake = FakeEngine()
    engine = TrackedEngine(fake, None, lambda: None)
    params = SamplingParams(max_tokens=6)

    async def go() -> tuple[list, list]:
        finished = [o async for o in engine.generate({}, params, "cmpl-a-0")]
        assert len(finished) == 3
        closed = engine.generate({}, params, "cmpl-b-0")
        await closed.__anext__()
        await closed.aclose()
        abandoned = engine.generate({}, params, "cmpl-c-0")
        await abandoned.__anext__()
        assert engine.live == {"cmpl-c-0"}
        ids = ("cmpl-a-0", "cmpl-b-0", "cmpl-c-0", "cmpl-d-0")
        return await engine.abort_left_behind(ids), await engine.abort_left_behind(("cmpl-a-0",))

    left, none_left = asyncio.run(go())
    assert left == ["cmpl-c-0"] and fake.aborted == ["cmpl-c-0"] and none_left == []
