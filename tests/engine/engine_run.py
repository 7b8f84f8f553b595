"""Runs one engine configuration in a fresh process (vLLM reads its env once per process) and
writes what happened as JSON. Used by the engine tests through `run_engine(...)`."""

from __future__ import annotations

import json
import sys


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    from trail.engine.config import EngineConfig

    cfg = EngineConfig.model_validate(spec["engine"])
    cfg.apply_env()
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(**cfg.engine_kwargs())
    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in spec["prompt_ids"]]
    params = [SamplingParams(temperature=0.0, **p) for p in spec["params"]]
    outs = llm.generate(prompts, params, use_tqdm=False)
    result = {o.request_id: list(o.outputs[0].token_ids) for o in outs}
    with open(out_path, "w") as f:
        json.dump({"outputs": result, "order": [o.request_id for o in outs]}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
