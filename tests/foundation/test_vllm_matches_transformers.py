"""The engine serves the real model: vLLM's greedy tokens equal transformers' greedy tokens.

Both run in fp32 from the same bf16 weights, so the only differences are kernel rounding
(~1e-6 relative); a greedy argmax flips only on a near-tie, which the first 32 tokens of these
prompts do not contain. We require exact equality of the token ids.
"""

from __future__ import annotations

import pytest

PROMPTS = [
    "What is the capital of France? Answer in one sentence.",
    "Write a short story about a lighthouse keeper.",
]
N_TOKENS = 32


@pytest.mark.engine
def test_vllm_greedy_equals_transformers_greedy(smollm2_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.models.chat import chat_prompt_ids

    tok = AutoTokenizer.from_pretrained(str(smollm2_path))
    prompt_ids = [chat_prompt_ids(tok, p) for p in PROMPTS]

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_path), dtype=torch.float32)
    expected = []
    for ids in prompt_ids:
        out = model.generate(torch.tensor([ids]), max_new_tokens=N_TOKENS, do_sample=False)
        expected.append(_until_eos(out[0, len(ids) :].tolist(), tok.eos_token_id))
    del model

    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    cfg = EngineConfig(model=str(smollm2_path), dtype="float32", max_num_seqs=4, kv_cache_gib=1)
    cfg.apply_env()
    llm = LLM(**cfg.engine_kwargs())
    params = SamplingParams(temperature=0.0, max_tokens=N_TOKENS)
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params)
    got = [_until_eos(list(o.outputs[0].token_ids), tok.eos_token_id) for o in outs]
    del llm
    for g, e, p in zip(got, expected, PROMPTS, strict=True):
        assert g == e, (
            f"vLLM and transformers disagree on {p!r}:\n{tok.decode(g)}\nvs\n{tok.decode(e)}"
        )
    assert len(set(map(tuple, got))) == len(PROMPTS)
    assert max(len(g) for g in got) == N_TOKENS, "at least one answer must run the full 32 tokens"


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids
