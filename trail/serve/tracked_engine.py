"""The replica's AsyncLLM as vLLM's OpenAI handlers see it.

vLLM's handlers call `engine_client.generate(...)` once per prompt; everything else they ask for
(config, renderer, tokenizer, abort) goes straight to the engine. Passing through here is what
lets a replica keep TRAIL's per-request duties without touching vLLM's serving code: the capture
settings the worker's sink reads (`extra_args["trail"]`) and the finished request's label, the
ids still generating, so that a replica can abort what a cancelled call left behind, and the
opt-in prediction summaries the scheduler put in `kv_transfer_params["trail"]`
(trail/engine/report.py), taken out before vLLM's handler sees them so its response keeps
vLLM's shape; the replica adds them as the `trail` field (trail/serve/openai_layer.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from typing import Any

from trail.engine.report import REPORT_KEY
from trail.serve.capture import ServedCapture


class TrackedEngine:
    def __init__(self, engine: Any, capture: ServedCapture | None, probe_version: Any) -> None:
        self._engine = engine
        self._capture = capture
        self._probe_version = probe_version  # a callable: the probe may be swapped meanwhile
        self.live: set[str] = set()  # engine ids whose generate() has not ended
        self.reports: dict[str, list[dict[str, Any]]] = {}  # engine id -> its summaries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        capture = self._capture_for(request_id, sampling_params)
        if capture is not None:
            sampling_params = _with_trail(sampling_params, capture.extra(request_id))
            count = _TokenCount(sampling_params)
        self.live.add(request_id)
        try:
            outs = self._engine.generate(prompt, sampling_params, request_id, *args, **kwargs)
            async with aclosing(outs):
                async for out in outs:
                    self._keep_report(request_id, out)
                    if capture is not None:
                        count.add(out)
                        if out.finished:
                            capture.label(
                                request_id,
                                count.tokens,
                                out.outputs[0].finish_reason,
                                sampling_params.max_tokens,
                                count.prompt_tokens,
                                self._probe_version(),
                            )
                    yield out
        finally:
            self.live.discard(request_id)

    async def abort_left_behind(self, request_ids: Iterable[str]) -> list[str]:
        """Abort those of `request_ids` still generating. vLLM aborts a request when its
        generate() is cancelled or closed, but a generator that only falls out of reach (an
        abandoned stream several handlers deep) is closed whenever the garbage collector gets to
        it — meanwhile the request holds a batch slot (a flaky CI run: six for 60 s)."""
        left = [r for r in request_ids if r in self.live]
        if left:
            await self._engine.abort(left)
        return left

    def _keep_report(self, request_id: str, out: Any) -> None:
        """Move the scheduler's summary out of `out.kv_transfer_params` (None again when
        nothing else is left, as vLLM has it without a KV connector). n > 1 choices are child
        requests: each finished one may bring its own (in vLLM's non-streamed mode only the
        last to finish does)."""
        params = getattr(out, "kv_transfer_params", None)
        if params and REPORT_KEY in params:
            rest = {k: v for k, v in params.items() if k != REPORT_KEY}
            out.kv_transfer_params = rest or None
            self.reports.setdefault(request_id, []).append(params[REPORT_KEY])

    def take_reports(self, request_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The summaries of these engine ids, in their order, forgotten here."""
        return [s for rid in request_ids for s in self.reports.pop(rid, [])]

    def _capture_for(self, request_id: str, params: Any) -> ServedCapture | None:
        """Captured: a sampled, single-choice generation (the probe rows of n > 1 choices would
        share one capture id)."""
        capture = self._capture
        if capture is None or getattr(params, "n", 1) != 1 or not capture.sampled(request_id):
            return None
        return capture


def _with_trail(params: Any, extra: dict[str, Any]) -> Any:
    params = params.clone()
    args = dict(params.extra_args or {})
    args["trail"] = {**(args.get("trail") or {}), **extra}
    params.extra_args = args
    return params


class _TokenCount:
    """Output tokens so far, whichever output kind the handler asked for (delta or whole)."""

    def __init__(self, params: Any) -> None:
        from vllm.sampling_params import RequestOutputKind

        self.delta = params.output_kind == RequestOutputKind.DELTA
        self.tokens = 0
        self.prompt_tokens = 0

    def add(self, out: Any) -> None:
        n = len(out.outputs[0].token_ids)
        self.tokens = self.tokens + n if self.delta else n
        if out.prompt_token_ids:
            self.prompt_tokens = len(out.prompt_token_ids)
