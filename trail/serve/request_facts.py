"""What TRAIL needs from an OpenAI request before routing it: the text the prompt predictor
reads, the prompt's size, the output cap, the number of choices and TRAIL's own extensions.

The request itself is vLLM's protocol model, validated by FastAPI exactly as `vllm serve`
validates it; the replica's vLLM handler renders and tokenizes it again for the engine. The
prompt size here is for routing only (prefill work), so a template this tokenizer cannot apply
(tools, multimodal parts) falls back to counting the message text.

TRAIL's extensions travel the way vLLM passes extra sampling arguments, in `vllm_xargs`
(which vLLM hands to the engine as `SamplingParams.extra_args`):
`trail_true_len` (the true output length, for the oracle policy TRAIL+) and
`trail_use_max_tokens` (false: max_tokens does not bound the ranking — benchmarks that send
ignore_eos + max_tokens = true length set it so that no policy sees the length) and
`trail_return` (true: the answer carries the request's predictions, the `trail` field and the
`x-trail-predicted-tokens` header; docs/serving.md, "Predictions in responses").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from trail.models.chat import messages_prompt_text
from trail.serve.errors import OpenAIError

MAX_TRUE_LEN = 1 << 31
logger = logging.getLogger("ray.serve")


@dataclass
class RequestFacts:
    text: str  # what the prompt predictor reads: the last user message / the first prompt
    prompt_tokens: int  # summed over a completion's prompts
    max_tokens: int  # the output cap the predictor's prediction is bounded by
    n: int  # choices per prompt (each is predicted work)
    prompts: int = 1

    @property
    def choices(self) -> int:
        """Sequences the engine will generate: n per prompt, each one predicted work."""
        return self.n * max(self.prompts, 1)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(
        str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
    )


def _cap(requested: int | None, prompt_tokens: int, max_model_len: int) -> int:
    room = max(max_model_len - prompt_tokens, 1)
    return min(requested, room) if requested else room


def chat_facts(req: Any, tokenizer: Any, max_model_len: int) -> RequestFacts:
    messages = [dict(m) for m in req.messages]
    texts = [_content_text(m.get("content")) for m in messages]
    simple = [
        {"role": m.get("role", "user"), "content": t} for m, t in zip(messages, texts, strict=True)
    ]
    try:
        prompt = messages_prompt_text(tokenizer, simple)
    except Exception:  # noqa: BLE001 - routing only: vLLM's handler reports real template errors
        prompt = " ".join(texts)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    text = users[-1] if users else (texts[-1] if texts else "")
    requested = req.max_completion_tokens or req.max_tokens
    return RequestFacts(text, n_prompt, _cap(requested, n_prompt, max_model_len), req.n or 1)


def completion_facts(req: Any, tokenizer: Any, max_model_len: int) -> RequestFacts:
    prompts = req.prompt if isinstance(req.prompt, list) else [req.prompt]
    if prompts and isinstance(prompts[0], int):  # one prompt as token ids
        prompts = [prompts]
    if not prompts or req.prompt is None:
        return RequestFacts("", 0, _cap(req.max_tokens, 0, max_model_len), req.n or 1, 0)
    sizes, first = [], ""
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            sizes.append(len(tokenizer(p)["input_ids"]))
            first = first or (p if i == 0 else "")
        else:
            ids = list(p)
            sizes.append(len(ids))
            if i == 0:
                first = tokenizer.decode([t for t in ids if 0 <= t < len(tokenizer)])
    cap = _cap(req.max_tokens, max(sizes), max_model_len)
    return RequestFacts(first, sum(sizes), cap, req.n or 1, len(prompts))


@dataclass
class TrailExtensions:
    xargs: dict[str, Any]  # the caller's other vllm_xargs, passed on untouched
    true_len: int | None
    use_max_tokens: bool
    trail_return: bool = False


def trail_extensions(req: Any) -> TrailExtensions:
    """TRAIL's keys from vllm_xargs, checked (400 for a bad value, never a silent drop)."""
    if req.model_extra and "trail" in req.model_extra:
        raise OpenAIError(
            400,
            "TRAIL's request extensions travel in vllm_xargs, e.g. "
            '"vllm_xargs": {"trail_true_len": 100, "trail_use_max_tokens": false}',
            param="trail",
        )
    xargs = dict(req.vllm_xargs or {})
    if "trail" in xargs:
        raise OpenAIError(400, "vllm_xargs.trail is reserved for the server", param="vllm_xargs")
    true_len = xargs.pop("trail_true_len", None)
    if true_len is not None and (
        isinstance(true_len, bool)
        or not isinstance(true_len, int)
        or not 1 <= true_len <= MAX_TRUE_LEN
    ):
        msg = f"vllm_xargs.trail_true_len must be an integer in [1, {MAX_TRUE_LEN}]"
        raise OpenAIError(400, msg, param="vllm_xargs.trail_true_len")
    use = _flag(xargs, "trail_use_max_tokens", True)
    return TrailExtensions(xargs, true_len, use, _flag(xargs, "trail_return", False))


def _flag(xargs: dict[str, Any], key: str, default: bool) -> bool:
    """Pop a true/false key (JSON true/false, 1/0 or "true"/"false"); 400 for anything else."""
    value = xargs.pop(key, default)
    if value not in (True, False, 0, 1, "true", "false"):
        raise OpenAIError(400, f"vllm_xargs.{key} must be true or false", param=f"vllm_xargs.{key}")
    return value in (True, 1, "true")


def drop_unknown_fields(req: Any) -> None:
    """vLLM ignores fields its models do not know (it logs them, as we do here); dropping them
    before the request crosses to a replica keeps junk (say, a 500-deep nested value) off the
    wire."""
    extra = req.model_extra
    if extra:
        logger.warning("ignored unknown request fields: %s", sorted(extra)[:10])
        extra.clear()
