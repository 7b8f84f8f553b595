"""The user's way in: `serve run deployments/cpu.yaml` (Ray's CLI) and `ray up` + `serve run`.

Both run against a loopback head with free ports inside a temp dir; teardown stops only that
cluster's processes (by pid), never every Ray on the machine.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.serve import wait_for
from trail.serve.localcluster import LocalCluster, cluster_pids, free_port

pytestmark = pytest.mark.serve
ROOT = Path(__file__).resolve().parents[2]


def cpu_config_for_test(cluster: LocalCluster, port: int, **engine_over) -> Path:
    """deployments/cpu.yaml with a free port, one replica, and a policy needing no probe."""
    cfg = yaml.safe_load((ROOT / "deployments" / "cpu.yaml").read_text())
    cfg["http_options"]["port"] = port
    args = cfg["applications"][0]["args"]
    args["engine"]["trail"]["policy"] = "trail-prompt"  # until the probe is shipped
    args["engine"].update(engine_over)
    args["replicas"]["num_replicas"] = 1
    args["load_dir"] = str(cluster.dir / "load")
    path = cluster.dir / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    def ready() -> bool:
        assert proc.poll() is None, "serve run exited"
        try:
            return httpx.get(f"{url}/v1/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(ready, timeout_s, interval_s=1.0), "app did not come up"


def stop_serve_run(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # serve run's own clean path: serve.shutdown()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def cluster():
    c = LocalCluster()
    try:
        yield c
    finally:
        from trail.serve.localcluster import stop_cluster_processes

        stop_cluster_processes(str(c.dir))
        assert cluster_pids(str(c.dir)) == []
        c.cleanup()


def test_serve_run_cpu_config_answers_the_openai_client(cluster):
    from openai import OpenAI

    cluster.start_head()
    port = free_port()
    proc = cluster.serve_run(cpu_config_for_test(cluster, port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout_s=420)
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)
        msg = [{"role": "user", "content": "What is the capital of France?"}]
        resp = client.chat.completions.create(
            model="smollm2", messages=msg, max_tokens=24, temperature=0
        )
        answer = resp.choices[0].message.content
        assert "Paris" in answer, answer
        stream = client.chat.completions.create(
            model="smollm2", messages=msg, max_tokens=24, temperature=0, stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert streamed == answer
    finally:
        stop_serve_run(proc)


@pytest.mark.slow
def test_ray_up_loopback_cluster_then_serve_run(cluster):
    bootstrap = [Path.home() / "ray_bootstrap_config.yaml", Path.home() / "ray_bootstrap_key.pem"]
    existed = [p.exists() for p in bootstrap]
    cluster.render()
    cluster.up()
    assert cluster_pids(str(cluster.dir)), "ray up started no head processes"
    port = free_port()
    config = cpu_config_for_test(
        cluster, port, model="tiny", dtype="float32", max_model_len=512, max_num_seqs=4
    )
    proc = cluster.serve_run(config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout_s=420)
        body = {
            "model": "smollm2",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
        }
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 5
    finally:
        stop_serve_run(proc)
        cluster.down()
        for path, was in zip(bootstrap, existed, strict=True):
            if not was:
                path.unlink(missing_ok=True)
    assert cluster_pids(str(cluster.dir)) == []
