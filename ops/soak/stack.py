"""What the soak runs against: the Serve app (2 LLM replicas, 2 ingress replicas, the TRAIL
router), a real Redis it can restart on the same port with or without its data, and the per-node
Prometheus exporter (`trail metrics serve`) as a process of its own.

Everything is started by this process and found again through its process tree, so the soak
never touches another user's Ray or engines on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from trail.serve.localcluster import free_port, start_loopback_serve

ROLES = (  # (role, what its command line contains), first match wins
    ("llm_replica", "ServeReplica:trail:LLMServer"),
    ("ingress", "ServeReplica:trail:Ingress"),
    ("engine_core", "VLLM::EngineCore"),
    ("controller", "ray::ServeController"),
    ("proxy", "ray::ProxyActor"),
    ("exporter", "trail.cli.metrics"),
    ("redis", "redis-server"),
    ("gcs", "gcs_server"),
    ("raylet", "raylet"),
    ("mp_child", "multiprocessing"),
    ("ray_other", "ray"),
)


def app_args(load_dir: Path, redis_url: str, store_ttl_s: int) -> dict[str, Any]:
    """The tiny model (as the Serve tests run it) behind 2 ingress replicas and 2 LLM replicas.
    The tiny model keeps ~3 req/s within what 2 shared CPU cores serve (SmolLM2 would not)."""
    return {
        "served_model_name": "tiny",
        "engine": {
            "model": "tiny",
            "dtype": "float32",
            "max_model_len": 512,
            "max_num_seqs": 4,
            "kv_cache_gib": 1,
            "enforce_eager": True,
            "trail": {"policy": "trail-oracle", "store_ttl_s": store_ttl_s},
        },
        "replicas": {
            "num_replicas": 2,
            "num_cpus": 0.25,
            "max_ongoing_requests": 16,
            "env": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
        },
        "router": {"kind": "trail", "stats_period_s": 0.2},
        "ingress": {"num_replicas": 2, "num_cpus": 0.1, "max_inflight": 12, "retry_after_s": 2},
        "load_dir": str(load_dir),
        "redis_url": redis_url,
    }


class RedisProc:
    """redis-server on a fixed port; `restart(keep_data)` SAVEs first or deletes the dump."""

    def __init__(self, root: Path) -> None:
        self.port, self.dir = free_port(), root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: bool(self.client().ping()), 10, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self, keep_data: bool) -> None:
        if keep_data:
            self.client().save()  # dump.rdb in self.dir, loaded at the next start
        self.stop()
        if not keep_data:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
        self.start()


class Exporter:
    """`trail metrics serve` over the app's PROMETHEUS_MULTIPROC_DIR, as its own process (a node
    runs it under a supervisor; the soak plays the supervisor after killing it)."""

    def __init__(self, metrics_dir: Path) -> None:
        self.port, self.metrics_dir = free_port(), metrics_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> None:
        args = [sys.executable, "-m", "trail.cli.metrics", "serve", "--port", str(self.port)]
        args += ["--path", str(self.metrics_dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def serving(self) -> bool:
        try:
            return "trail_" in httpx.get(self.url, timeout=2).text
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2) -> float:  # noqa: ANN001
    """Seconds until `predicate()` held; raises TimeoutError past `timeout_s`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if predicate():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001, S110 - "not yet" for servers that are starting
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready within {timeout_s:g} s")


def role_of(proc: psutil.Process) -> str | None:
    try:
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return next((role for role, mark in ROLES if mark in cmd), None)


@dataclass
class Stack:
    root: Path
    url: str = ""
    redis: RedisProc | None = None
    exporter: Exporter | None = None
    saved_metrics_env: str | None = None  # put back at the end (a test process goes on)
    load_dir: Path = field(init=False)
    metrics_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.load_dir, self.metrics_dir = self.root / "load", self.root / "metrics"
        self.load_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)

    def processes(self) -> dict[int, str]:
        """pid -> role of every process this soak started (its own process is `driver`)."""
        me = psutil.Process()
        found = {me.pid: "driver"}
        for child in me.children(recursive=True):
            role = role_of(child)
            if role is not None:
                found[child.pid] = role
        return found

    def pids(self, role: str) -> list[int]:
        return sorted(pid for pid, r in self.processes().items() if r == role)


def start_stack(store_ttl_s: int, root: Path | None = None) -> Stack:
    """Redis, the exporter, an in-process loopback Ray + Serve and the app; returns once both
    LLM replicas publish stats and a request through the HTTP proxy succeeds."""
    stack = Stack(Path(root or tempfile.mkdtemp(prefix="trail-soak-")))
    stack.saved_metrics_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(stack.metrics_dir)  # read by build_app
    stack.redis = RedisProc(stack.root)
    stack.redis.start()
    stack.exporter = Exporter(stack.metrics_dir)
    stack.exporter.start()
    port = start_loopback_serve()
    from ray import serve

    from trail.serve.app import build_app

    args = app_args(stack.load_dir, stack.redis.url, store_ttl_s)
    serve.run(build_app(args), name="trail", route_prefix="/")
    stack.url = f"http://127.0.0.1:{port}"
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    ok = lambda: httpx.post(stack.url + "/v1/chat/completions", json=body, timeout=30).is_success  # noqa: E731
    wait_until(ok, 300, "the app")
    return stack


def stop_stack(stack: Stack) -> None:
    """Serve, Ray (this process's own), Redis, the exporter; then the temp dir."""
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
        if stack.redis:
            stack.redis.stop()
        if stack.exporter:
            stack.exporter.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
        if stack.saved_metrics_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.saved_metrics_env
