"""`vllm bench serve` (vLLM's own benchmark client, unmodified) runs against our endpoint with
both of its OpenAI backends and completes every request."""

from __future__ import annotations

import pytest

from trail.lab.bench.vllm_compat import BACKENDS, vllm_bench, write_sharegpt

pytestmark = pytest.mark.serve


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_vllm_bench_serve_completes_against_our_endpoint(serve_app, tiny_path, tmp_path, backend):
    prompts = [f"Tell me a story about the number {i}." for i in range(4)]
    trace = write_sharegpt(tmp_path / "sharegpt.json", prompts)
    result = vllm_bench(
        serve_app.url, backend, trace, n=4, rate=8.0, out_len=4, out=tmp_path, model="tiny",
        tokenizer=tiny_path,
    )  # fmt: skip
    assert not result.get("failed"), result
    assert result["completed"] == 4 and result["failed"] == 0, result
    assert result["output_throughput"] > 0 and result["mean_ttft_ms"] > 0, result
