"""Layer hidden states by one teacher-forced transformers pass over prompt + generated tokens.

This reproduces what the engine captures (residual stream after decoder layer k =
`output_hidden_states[k + 1]`): at prefill the mean over the prompt rows, labelled with the total
output length L; at decode step g >= 1 the row of output token g-1 (position n_prompt + g - 1),
labelled with the remaining length L - g. One pass gives every layer at every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Capture:
    """Rows for one request: generated count g (0 = prefill mean) and [rows, layers, hidden]."""

    steps: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray


def sample_steps(length: int, split: str, rng: np.random.Generator, n: int, stride: int):
    """Decode steps to probe: random for train/val (as the release), a regular grid for test.

    A grid on the test split lets eval replay refinement over a request's whole life.
    """
    if length <= 1:
        return np.zeros(0, dtype=np.int64)
    if split == "test":
        return np.arange(1, length, stride, dtype=np.int64)
    pool = np.arange(1, length, dtype=np.int64)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def load_teacher(model_dir: str, dtype: torch.dtype = torch.float32):
    """The served model in transformers, eval mode; fp32 because this CPU lacks native bf16."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    return model.eval()


@torch.inference_mode()
def capture(model, prompt_ids: list[int], output_ids: list[int], steps: np.ndarray) -> Capture:  # noqa: ANN001
    """All layers at the prefill mean and at the given decode steps (fp16 to keep shards small)."""
    n_prompt = len(prompt_ids)
    last = int(steps.max()) if len(steps) else 0
    ids = torch.tensor([list(prompt_ids) + list(output_ids[:last])])
    out = model.model(input_ids=ids, output_hidden_states=True, use_cache=False)
    layers = torch.stack(out.hidden_states[1:], dim=0)[:, 0]  # [layers, T, hidden]
    prefill = layers[:, :n_prompt].float().mean(dim=1, keepdim=True)
    decode = layers[:, n_prompt + torch.as_tensor(steps) - 1] if len(steps) else layers[:, :0]
    rows = torch.cat([prefill, decode.float()], dim=1).transpose(0, 1)  # [rows, layers, hidden]
    total = len(output_ids)
    all_steps = np.concatenate([[0], steps]).astype(np.int64)
    return Capture(all_steps, (total - all_steps).astype(np.int64), rows.half().numpy())
