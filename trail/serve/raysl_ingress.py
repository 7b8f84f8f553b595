"""Ray Serve LLM's OpenAI ingress with TRAIL's prompt prediction before routing.

Ray's `OpenAiIngress` forwards vLLM's request model to the model's LLMServer handle; the handle's
request router (LeastWorkRouter) sees only that model. This subclass predicts each chat or
completion's output length from its prompt first (our own ingress's `InitialPredictor`, the
MiniLM head shipped in trail/assets) and puts the prediction where both readers look:
`vllm_xargs["trail"]` (the router's `call_from_vllm_request`, and the engine's scheduler, which
starts its posterior from the distribution). Named in `LLMServingArgs.ingress_cls_config`:

    ingress_cls_config:
      ingress_cls: trail.serve.raysl_ingress:TrailOpenAiIngress
      ingress_extra_kwargs: {tokenizer: smollm2, max_model_len: 2048}
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress
from ray.llm._internal.serve.core.ingress.utils import _sanitize_chat_completion_request

from trail.serve.prediction import InitialPredictor
from trail.serve.request_facts import chat_facts, completion_facts

GENERATING = {"chat": chat_facts, "completions": completion_facts}


class TrailOpenAiIngress(OpenAiIngress):
    def __init__(
        self,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, Any],
        *,
        tokenizer: str,
        max_model_len: int,
        prompt_predictor_path: str | None = None,
        default_prediction: float = 256.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(llm_deployments, model_cards, **kwargs)
        from transformers import AutoTokenizer

        from trail.serve.config import resolve_model

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
        self.max_model_len = max_model_len
        self.predictor = InitialPredictor(prompt_predictor_path, default_prediction)
        # a fast tokenizer is not safe for concurrent calls; a long prompt takes ~1 s per MB
        self.tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="tokenize")

    async def _get_response(self, *, body: Any, call_method: str, **kwargs: Any) -> Any:
        facts_of = GENERATING.get(call_method)
        if facts_of is not None and "trail_initial_pred" not in (body.vllm_xargs or {}):
            await self._predict(body, facts_of)
        async for item in super()._get_response(body=body, call_method=call_method, **kwargs):
            yield item

    async def _predict(self, body: Any, facts_of: Any) -> None:
        """vllm_xargs["trail"] = the prompt's prediction (a client's own `trail_initial_pred`
        wins and skips it; its other flat `trail_*` keys are kept; the nested key, which a
        client cannot send, is the server's)."""
        if hasattr(body, "messages"):  # Ray sanitizes too, later; facts read the messages now
            body = _sanitize_chat_completion_request(body)
        loop = asyncio.get_running_loop()
        facts = await loop.run_in_executor(
            self.tokenize_pool, facts_of, body, self.tokenizer, self.max_model_len
        )
        xargs = dict(body.vllm_xargs or {})
        true_len = xargs.get("trail_true_len")
        routing_len = int(true_len) if isinstance(true_len, int | float) else None
        pred = await self.predictor.predict(facts.text, routing_len, facts.max_tokens)
        trail: dict[str, Any] = {"initial_pred": pred.expected}
        if pred.dist is not None:
            trail["initial_dist"] = pred.dist
        if pred.version is not None:
            trail["prompt_version"] = pred.version
        body.vllm_xargs = {**xargs, "trail": trail}  # -> SamplingParams.extra_args
