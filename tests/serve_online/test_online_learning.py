"""Online learning in the running app (issue 19): served requests are captured, a new probe in
the watched folder is swapped in under load without failing a request, an incompatible one is
refused while serving goes on, and records and metrics carry the probe's version.

Real Ray Serve, two tiny-model engines (`trail`, the known random probe), a real Redis.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from tests.support.known_probe import write_known_probe
from tests.support.serve import ServeStack, chat, replica_stats, running_app, wait_for, wait_idle
from trail.engine.sink import capture_stats
from trail.lab.learn.served import load_served
from trail.metrics import render_latest
from trail.predict.bins import LengthBins
from trail.predict.probe import ProbeBundle, ProbeMLP
from trail.predict.prompt import PromptPredictor
from trail.serve.capture import read_labels
from trail.store import StoreReader

pytestmark = pytest.mark.serve
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def online_app(tiny_path) -> Iterator[tuple[ServeStack, Path]]:  # noqa: ARG001
    root: list[Path] = []

    def trail_with_capture(args: dict, folder: Path) -> None:
        root.append(folder)
        probe = write_known_probe(folder / "probe-a", seed=1)
        args["engine"]["trail"] = {"policy": "trail", "probe_path": str(probe)}
        args["capture"] = {"fraction": 1.0, "every": 2, "dir": str(folder / "captured")}
        args["probe_watch"] = str(folder / "live")
        args["prompt_watch"] = str(folder / "live-prompt")
        args["probe_watch_s"] = 0.3

    with running_app(trail_with_capture, ingress={"max_inflight": 32}) as stack:
        yield stack, root[0]


def versions(load_dir: Path) -> set:
    return {s.probe_version for s in replica_stats(load_dir).values()}


def reloads(load_dir: Path) -> dict:
    """What a failed wait should print: each replica's probe version and last reload error."""
    return {r: (s.probe_version, s.reload_error) for r, s in replica_stats(load_dir).items()}


def burst(url: str, n: int, tokens: int, during=None) -> list[httpx.Response]:  # noqa: ANN001
    """n concurrent requests of exactly `tokens` tokens; `during()` runs once they are sent."""

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=180) as client:
            body = chat("tell me a story", max_tokens=tokens, ignore_eos=True)
            sent = [asyncio.create_task(client.post(url + CHAT, json=body)) for _ in range(n)]
            await asyncio.sleep(1.0)
            if during is not None:
                during()
            return list(await asyncio.gather(*sent))

    return asyncio.run(go())


def record_versions(stack: ServeStack, n: int) -> list[str | None]:
    return [r.get("probe_version") for r in StoreReader.from_url(stack.redis.url).recent(n)]


def test_a_new_probe_is_swapped_in_under_load_and_no_request_fails(online_app):
    stack, root = online_app
    wait_idle(stack.load_dir)
    old = ProbeBundle.load(root / "probe-a").version
    assert versions(stack.load_dir) == {old}
    new = ProbeBundle.load(write_known_probe(root / "probe-b", seed=2)).version
    assert new != old
    link = root / "live"

    # 16 x 300 tokens on 2 x 4 slots: two waves of seconds each; the swap lands inside them
    responses = burst(stack.url, 16, 300, during=lambda: link.symlink_to(root / "probe-b"))
    assert [r.status_code for r in responses] == [200] * 16
    assert all(r.json()["usage"]["completion_tokens"] == 300 for r in responses)
    assert wait_for(lambda: versions(stack.load_dir) == {new}, 30), reloads(stack.load_dir)

    after = burst(stack.url, 4, 16)
    assert [r.status_code for r in after] == [200] * 4
    assert wait_for(lambda: record_versions(stack, 4) == [new] * 4, 10), record_versions(stack, 4)
    assert set(record_versions(stack, 20)) <= {old, new}

    families = text_string_to_metric_families(render_latest(stack.metrics_dir)[0].decode())
    errors = {
        s.labels["predictor"]: s.value
        for f in families
        for s in f.samples
        if s.name == "trail_prediction_abs_error_tokens_count" and s.labels["phase"] == "refined"
    }
    assert errors.get(new, 0) > 0, errors  # the dashboard's online MAE by version


def test_an_incompatible_probe_is_refused_and_serving_goes_on(online_app):
    stack, root = online_app
    wait_idle(stack.load_dir)
    running = versions(stack.load_dir)
    bins = LengthBins.uniform(4, 128)  # other bins: the scheduler's posterior would not fit
    other = root / "probe-other-bins"
    ProbeBundle(ProbeMLP(128, bins.k), 1, bins, {"note": "test"}).save(other)
    link = root / "live"
    link.unlink(missing_ok=True)
    link.symlink_to(other)

    def refused() -> bool:
        stats = replica_stats(stack.load_dir).values()
        return bool(stats) and all("bins" in (s.reload_error or "") for s in stats)

    assert wait_for(refused, 30), reloads(stack.load_dir)
    time.sleep(1.0)  # several polls: refused once, not retried into a crash loop
    assert versions(stack.load_dir) == running
    responses = burst(stack.url, 4, 16)
    assert [r.status_code for r in responses] == [200] * 4


def natural(url: str, texts: list[str]) -> list[httpx.Response]:
    """Requests without ignore_eos, so the ingress runs its prompt predictor on them."""
    with httpx.Client(timeout=120) as client:
        return [client.post(url + CHAT, json=chat(t, max_tokens=12)) for t in texts]


def test_every_finished_request_was_captured_with_its_label(online_app):
    stack, root = online_app
    wait_idle(stack.load_dir)
    ids = [
        r.headers["x-trail-request-id"] for r in natural(stack.url, ["hi", "why is the sky blue?"])
    ]
    folder = root / "captured"
    assert wait_for(lambda: set(ids) <= set(read_labels(folder)), 10)
    labels = read_labels(folder)
    assert len(labels) >= 26  # every request of the tests above (fraction 1.0)
    assert {x["finish_reason"] for x in labels.values()} <= {"length", "stop"}
    prompts = read_labels(folder, "prompts")  # the ingress's embeddings of the same requests
    assert set(ids) <= set(prompts) and len(prompts[ids[0]]["embedding"]) == 384
    stats = capture_stats(folder)
    assert stats["rows_written"] > 0 and stats["dropped_queue"] == stats["dropped_quota"] == 0
    assert wait_for(lambda: len(load_served(folder, layer=1).ids) == len(labels), 10)
    data = load_served(folder, layer=1)
    assert set(data.steps) >= {0, 2, 4}  # prefill, then every 2nd position
    assert torch.as_tensor(data.vectors).abs().sum() > 0


def test_a_retrained_prompt_head_is_swapped_into_the_ingress(online_app, tmp_path):
    stack, root = online_app
    shipped = PromptPredictor.load()
    before = [r.headers["x-trail-request-id"] for r in natural(stack.url, ["hello there"])]
    assert wait_for(lambda: record(stack, before[0]).get("prompt_version") == shipped.version, 10)
    head = copy.deepcopy(shipped.head)
    with torch.no_grad():
        head.net[-1].bias += torch.arange(head.net[-1].bias.numel(), dtype=torch.float32)
    new = PromptPredictor(head, shipped.bins, {"note": "test"}, shipped.adapter)
    new.save(root / "prompt-b")
    (root / "live-prompt").symlink_to(root / "prompt-b")

    def swapped() -> bool:
        rid = natural(stack.url, ["hello again"])[0].headers["x-trail-request-id"]
        return wait_for(lambda: record(stack, rid).get("prompt_version") == new.version, 5)

    assert wait_for(swapped, 30, interval_s=0.5)


def record(stack: ServeStack, request_id: str) -> dict:
    return StoreReader.from_url(stack.redis.url).get(request_id) or {}
