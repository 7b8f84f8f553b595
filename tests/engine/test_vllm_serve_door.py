"""Door 2: plain `vllm serve` with TRAIL_CONFIG runs TRAIL's scheduler (docs/serving.md).

One real server (the tiny model, one sequence at a time), an informative probe (random weights:
each request its own prediction), requests over the OpenAI HTTP API. While a long request runs,
three short ones queue in arrival order w0, w1, w2 with flat `vllm_xargs` predictions 6, 4, 2:
TRAIL serves them w2, w1, w0 (FCFS would serve w0 first), the probe ran in the engine, and
`/metrics` shows TRAIL's metrics next to vLLM's."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.support.engine import read_events
from tests.support.known_probe import write_known_probe
from tests.support.vllm_server import vllm_serve

WAITING = {"w0": 6, "w1": 4, "w2": 2}  # name -> trail_initial_pred, in arrival order


def _complete(url: str, name: str, max_tokens: int, results: dict, **xargs: float) -> None:
    body = {
        "model": "tiny",
        "prompt": f"Tell me about {name}.",
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "request_id": name,  # vLLM's engine id is cmpl-<name>-0-<suffix>
        "vllm_xargs": xargs,
    }
    results[name] = httpx.post(f"{url}/v1/completions", json=body, timeout=120)


def _name(engine_id: str) -> str:
    return engine_id.removeprefix("cmpl-").split("-")[0]


def _wait_for(dump, needle: str, worker: threading.Thread, timeout_s: float = 60) -> None:
    """Until the scheduler (in EngineCore) logged `needle`; the HTTP path's timing varies."""
    deadline = time.monotonic() + timeout_s
    while not (dump.exists() and needle in dump.read_text()):
        assert time.monotonic() < deadline and worker.is_alive(), f"no {needle} in {dump}"
        time.sleep(0.02)


@pytest.mark.engine
@pytest.mark.timeout(420)
def test_vllm_serve_with_trail_config_ranks_by_prediction(tiny_path, tmp_path, monkeypatch):
    dump = tmp_path / "events.jsonl"
    probe = write_known_probe(tmp_path / "probe", seed=3)
    trail = {"policy": "trail", "probe_path": str(probe), "c": 0, "dump_path": str(dump)}
    monkeypatch.setenv("TRAIL_CONFIG", json.dumps(trail))  # c=0: no preemption, a pure order
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    flags = ["--dtype", "float32", "--max-num-seqs", "1", "--max-model-len", "1024"]
    flags += ["--enforce-eager"]
    results: dict[str, httpx.Response] = {}
    with vllm_serve(tiny_path, "tiny", *flags) as url:
        # long enough that the three arrivals land while it decodes, even on a busy machine
        blocker = threading.Thread(target=_complete, args=(url, "blocker", 1000, results))
        blocker.start()
        _wait_for(dump, '"probe"', blocker)  # the blocker is decoding
        waiting = []
        for name, pred in WAITING.items():
            xargs = {"trail_initial_pred": pred}
            if name == "w0":  # the opt-in summary, in vLLM's own kv_transfer_params field
                xargs["trail_return"] = 1
            waiting.append(
                threading.Thread(target=_complete, args=(url, name, 8, results), kwargs=xargs)
            )
            waiting[-1].start()
            _wait_for(dump, f'"cmpl-{name}-', waiting[-1])  # arrival order w0, w1, w2
        for t in [blocker, *waiting]:
            t.join(180)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert {n: r.status_code for n, r in results.items()} == dict.fromkeys(results, 200)
    assert all(len(r.json()["choices"][0]["text"]) > 0 for r in results.values())
    report = results["w0"].json()["kv_transfer_params"]["trail"]
    assert (report["initial_pred"], report["generated"]) == (6.0, 8)
    assert report["request_id"] == "cmpl-w0-0" and report["final_pred"] is not None
    assert results["w1"].json()["kv_transfer_params"] is None  # not asked: vLLM's shape
    events = read_events(dump)
    arrivals = {_name(e["id"]): e for e in events if e["event"] == "arrival"}
    finished = [_name(e["id"]) for e in events if e["event"] == "finished"]
    assert [n for n in arrivals if n != "blocker"] == list(WAITING)  # FCFS would serve w0 first
    assert {n: arrivals[n]["initial_pred"] for n in WAITING} == WAITING  # the flat keys arrived
    blocker_done = next(e["t"] for e in events if e["event"] == "finished")
    assert all(arrivals[n]["t"] < blocker_done for n in WAITING), "all must wait together"
    assert finished == ["blocker", "w2", "w1", "w0"], finished
    # the probe ran in vllm serve's engine, with an answer of its own per request
    refined = {
        _name(e["id"]): e["expected"] for e in events if e["event"] == "probe" and e["at"] == 0
    }
    assert (
        set(refined) == {"blocker", *WAITING} and len({round(v, 1) for v in refined.values()}) >= 3
    )
    lines = [line for line in metrics.splitlines() if line.startswith("trail_")]
    assert any(line.startswith("trail_probe_calls") for line in lines), lines[:20]
    assert any(line.startswith("vllm:") for line in metrics.splitlines())


# distinct prompts: the known probe (seed 3) reads them 65, 77, 79 and 81 tokens, in another
# order than their arrival (deterministic on CPU: the same values run after run)
PROMPTS = {
    "p0": "Write a long essay on the history of Rome, with dates.",
    "p1": "Hi",
    "p2": "1 2 3 4 5 6 7 8 9 10 11 12",
    "p3": "What is the capital of France? Answer in one word.",
}


def _prompted(url: str, name: str, results: dict) -> None:
    body = {
        "model": "tiny",
        "prompt": PROMPTS[name],
        "max_tokens": 8,
        "ignore_eos": True,
        "request_id": name,
        "vllm_xargs": {"trail_use_max_tokens": 0},  # max_tokens 8 would tie every rank
    }
    results[name] = httpx.post(f"{url}/v1/completions", json=body, timeout=120)


@pytest.mark.engine
@pytest.mark.timeout(420)
def test_vllm_serve_ranks_waiting_requests_by_the_probe(tiny_path, tmp_path, monkeypatch):
    """With the ranking lane on (`rank_lane_seqs: 1`), requests that arrive while the only decode
    slot is busy are prefilled beside it; the probe reads each one's end-of-prefill state, and
    they are served in the probe's order — not arrival order, and not by a prediction the
    client or an ingress gave (there is none: each arrives at the default, 256)."""
    dump = tmp_path / "events.jsonl"
    probe = write_known_probe(tmp_path / "probe", seed=3)
    trail = {"policy": "trail", "probe_path": str(probe), "c": 0, "dump_path": str(dump)}
    monkeypatch.setenv("TRAIL_CONFIG", json.dumps({**trail, "rank_lane_seqs": 1}))
    flags = ["--dtype", "float32", "--max-num-seqs", "1", "--max-model-len", "1024"]
    results: dict[str, httpx.Response] = {}
    with vllm_serve(tiny_path, "tiny", *flags, "--enforce-eager") as url:
        blocker = threading.Thread(target=_complete, args=(url, "blocker", 1000, results))
        blocker.start()
        _wait_for(dump, '"probe"', blocker)  # the blocker is decoding
        waiting = []
        for name in PROMPTS:
            waiting.append(threading.Thread(target=_prompted, args=(url, name, results)))
            waiting[-1].start()
            _wait_for(dump, f'"cmpl-{name}-', waiting[-1])  # arrival order p0, p1, p2, p3
        for t in [blocker, *waiting]:
            t.join(180)
    assert {n: r.status_code for n, r in results.items()} == dict.fromkeys(results, 200)
    events = read_events(dump)
    arrivals = [_name(e["id"]) for e in events if e["event"] == "arrival"]
    assert arrivals == ["blocker", *PROMPTS]
    assert all(e["initial_pred"] == 256 for e in events if e["event"] == "arrival")
    read = {_name(e["id"]): e["expected"] for e in events if e["event"] == "probe" and e["at"] == 0}
    blocker_done = next(e["t"] for e in events if e["event"] == "finished")
    parked = [_name(e["id"]) for e in events if e["event"] == "preempted" and e["t"] < blocker_done]
    assert parked == list(PROMPTS)  # each prefilled in the lane, then parked: the slot was busy
    finished = [_name(e["id"]) for e in events if e["event"] == "finished"][1:]
    by_probe = sorted(PROMPTS, key=lambda n: read[n])
    assert finished == by_probe != list(PROMPTS), (finished, read)
    # admitted to decode at the probe's reading, less the one token its prefill produced
    admitted = {_name(e["id"]): e["rank"] for e in events if e["event"] == "admitted"}
    assert all(abs(admitted[n] - (read[n] - 1)) < 1e-6 for n in PROMPTS), (admitted, read)
