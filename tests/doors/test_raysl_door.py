"""Door 1: Ray Serve LLM's own OpenAI app (`ray.serve.llm.build_openai_app`) with TRAIL.

The shipped deployments/raysl-cpu.yaml, pointed at the tiny model and a test-owned Redis, runs
two replicas of Ray's LLMServer subclassed by trail.serve.raysl.TrailLLMServer behind Ray's
OpenAiIngress (subclassed to predict from the prompt first), with TRAIL's LeastWorkRouter as the
deployment's request router. An OpenAI client
talks to it; the scheduler in each engine is TRAIL's (its event log and the probe's outputs, the
records in Redis), and the router in the ingress receives the replicas' predicted work.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.engine import read_events
from tests.support.known_probe import write_known_probe
from tests.support.redis_server import RedisServer
from tests.support.serve import apply_ray_env, wait_for
from trail.policy.replica_stats import ReplicaStats

pytest.importorskip("pyarrow", reason="Ray Serve LLM needs pyarrow: the `raysl` extra")
ROOT = Path(__file__).resolve().parents[2]
ROUTER = "trail-raysl"


def raysl_args(tiny_path: Path, root: Path, redis_url: str) -> dict:
    """The shipped YAML's args, pointed at the tiny model, a known probe and the test's Redis,
    metrics and event log."""
    app = yaml.safe_load((ROOT / "deployments" / "raysl-cpu.yaml").read_text())["applications"][0]
    assert app["import_path"] == "ray.serve.llm:build_openai_app"
    args = app["args"]
    llm = args["llm_configs"][0]
    llm["model_loading_config"] = {"model_id": "tiny", "model_source": str(tiny_path)}
    engine = llm["engine_kwargs"]
    engine.update(max_model_len=512, max_num_seqs=2)
    trail = engine["hf_overrides"]["trail"]
    trail.update(
        probe_path=str(write_known_probe(root / "probe", seed=3)),
        redis_url=redis_url,
        dump_path=str(root / "events.jsonl"),
    )
    args["ingress_cls_config"]["ingress_extra_kwargs"].update(tokenizer=str(tiny_path))
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(root / "metrics")}
    llm["runtime_env"]["env_vars"].update(metrics)
    args["ingress_deployment_config"]["ray_actor_options"]["runtime_env"] = {"env_vars": metrics}
    return args


@pytest.fixture(scope="module")
def raysl_app(tiny_path):
    apply_ray_env()
    import ray
    from ray import serve
    from ray.serve.llm import build_openai_app

    from trail.serve.localcluster import start_loopback_serve

    root = Path(tempfile.mkdtemp(prefix="trail-raysl-"))
    (root / "metrics").mkdir()
    redis = RedisServer().start()
    port = start_loopback_serve()
    try:
        serve.run(build_openai_app(raysl_args(tiny_path, root, redis.url)), name="raysl")
        yield f"http://127.0.0.1:{port}", root, redis
    finally:
        serve.shutdown()
        ray.shutdown()
        redis.close()


def _metric(root: Path, name: str) -> dict[tuple, float]:
    from trail.metrics.exporter import merged_registry

    out = {}
    for family in merged_registry(root / "metrics").collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.mark.serve
@pytest.mark.timeout(600)
def test_build_openai_app_runs_trail(raysl_app):
    from openai import OpenAI

    url, root, redis = raysl_app
    client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    chat = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=8,
        extra_body={"vllm_xargs": {"trail_return": 1}},  # opt in: TRAIL's summary rides along
    )
    assert chat.choices[0].message.content and chat.usage.completion_tokens > 0
    summary = chat.model_extra["kv_transfer_params"]["trail"]
    assert summary["generated"] == chat.usage.completion_tokens and summary["refinements"] > 0
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8, stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces)
    text = client.completions.create(model="tiny", prompt="Once upon", max_tokens=8)
    assert text.choices[0].text
    assert (text.model_extra or {}).get("kv_transfer_params") is None  # not asked: vLLM's shape
    # TRAIL's flat per-request key reaches TRAIL's scheduler through Ray's request path
    hinted = client.completions.create(
        model="tiny",
        prompt="hint",
        max_tokens=4,
        extra_body={"vllm_xargs": {"trail_initial_pred": 7}},
    )
    assert hinted.choices[0].text is not None
    # /tokenize through Ray's ingress: Ray 2.60 misses vLLM 0.32's handler (TrailVLLMEngine)
    tokens = httpx.post(f"{url}/tokenize", json={"model": "tiny", "prompt": "hi there"}, timeout=30)
    assert tokens.status_code == 200 and tokens.json()["count"] >= 2, tokens.text

    # a burst: the router sees replicas busy with predicted work and spreads it
    results: list[int] = []

    def one(i: int) -> None:
        r = client.completions.create(model="tiny", prompt=f"Story {i}:", max_tokens=48)
        results.append(r.usage.completion_tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 8 and all(n > 0 for n in results)

    # the scheduler in the engines is TRAIL's: it logged every request, the probe refined them
    events = read_events(root / "events.jsonl")
    arrivals = [e for e in events if e["event"] == "arrival"]
    assert len(arrivals) == 12, [e["id"] for e in arrivals]
    assert any(e["initial_pred"] == 7 for e in arrivals)  # the client's hint, not the default
    probed = {e["id"] for e in events if e["event"] == "probe"}
    assert {e["id"] for e in arrivals} <= probed
    # its predictions are in Redis, each under the replica that served it
    # (the store's writer flushes in batches: wait for the last ones)
    assert wait_for(lambda: len(_records(redis.url)) >= 12, 30), _records(redis.url)
    records = _records(redis.url)
    assert all(r["policy"] == "trail" and r["trajectory"] for r in records)
    # the others were predicted from the prompt by the ingress (MiniLM head) before routing
    prompted = [r for r in records if r["prompt_version"] is not None and r["initial_dist"]]
    assert len(prompted) == len(records) - 1, records

    # the router in Ray's ingress received predicted work from both replicas
    decisions = _metric(root, "trail_router_decisions_total")
    ours = {dict(k)["replica"]: v for k, v in decisions.items() if dict(k)["router"] == ROUTER}
    assert sum(ours.values()) >= 12 and len(ours) == 2, decisions
    work = _metric(root, "trail_router_replica_work_tokens")
    assert any(v > 0 for k, v in work.items() if dict(k)["router"] == ROUTER), work
    assert set(ours) == {r["replica"] for r in records}  # one name per replica, both places
    published = _published_stats()  # what the controller polls, parsed as the router parses it
    assert published and all(s.max_num_seqs == 2 for s in published)  # lane seats not counted
    assert {s.replica for s in published} <= set(ours)


def _records(redis_url: str) -> list[dict]:
    from trail.store import StoreReader

    return [r for r in StoreReader.from_url(redis_url).recent(100) if r]


def _published_stats() -> list[ReplicaStats]:
    """What each replica's record_routing_stats returns, parsed as the router parses it."""
    from ray import serve

    status = serve.status().applications["raysl"].deployments
    name = next(d for d in status if d != "OpenAiIngress")
    handle = serve.get_deployment_handle(name, app_name="raysl")
    stats = {}
    for _ in range(8):  # whichever replicas the handle's router picks
        raw = handle.record_routing_stats.remote().result(timeout_s=30)
        parsed = ReplicaStats.from_dict(raw)
        stats[parsed.replica] = parsed
    return list(stats.values())


def test_yaml_parses_as_ray_serve_llm_config():
    """The shipped YAML is a valid LLMServingArgs (no engine started)."""
    from ray.llm._internal.serve.core.ingress.builder import LLMServingArgs

    app = yaml.safe_load((ROOT / "deployments" / "raysl-cpu.yaml").read_text())["applications"][0]
    parsed = LLMServingArgs.model_validate(app["args"])
    llm = parsed.llm_configs[0]
    assert llm.server_cls.__name__ == "TrailLLMServer"
    assert parsed.ingress_cls_config.ingress_cls.__name__ == "TrailOpenAiIngress"
    router = llm.deployment_config["request_router_config"]
    assert router["request_router_class"] == "trail.serve.routers:LeastWorkRouter"
    assert json.loads(json.dumps(llm.engine_kwargs["hf_overrides"]))["trail"]["policy"] == "trail"
