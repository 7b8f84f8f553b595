"""Layer hidden states by one teacher-forced transformers pass over prompt + generated tokens.

This reproduces what the engine captures (residual stream after decoder layer k =
`output_hidden_states[k + 1]`): the row whose logits sampled output token g, i.e. position
n_prompt + g - 1, labelled with the remaining length L - g. At g = 0 that is the last prompt
token (label L, the total): vLLM computes it even when the rest of the prompt is a prefix-cache
hit, so the initial probe prediction does not depend on what was cached (a prompt *mean* would
cover only the uncached suffix). One pass gives every layer at every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Capture:
    """Rows for one request: generated count g (0 = last prompt token) and [rows, layers, hidden];
    `dense` (if asked for): every step 0..L-1 at a few candidate layers, [L, dense layers, hidden],
    so that evaluation can replay refinement at the cadence the engine serves."""

    steps: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray
    dense: np.ndarray | None = None


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
def capture(
    model,  # noqa: ANN001
    prompt_ids: list[int],
    output_ids: list[int],
    steps: np.ndarray,
    dense_layers: tuple[int, ...] = (),
) -> Capture:
    """All layers at the last prompt token and at the given decode steps (fp16: small shards)."""
    n_prompt = len(prompt_ids)
    total = len(output_ids)
    last = (total - 1) if dense_layers else (int(steps.max()) if len(steps) else 0)
    ids = torch.tensor([list(prompt_ids) + list(output_ids[:last])])
    out = model.model(input_ids=ids, output_hidden_states=True, use_cache=False)
    layers = torch.stack(out.hidden_states[1:], dim=0)[:, 0]  # [layers, T, hidden]
    all_steps = np.concatenate([[0], steps]).astype(np.int64)
    rows = layers[:, n_prompt + torch.as_tensor(all_steps) - 1].float().transpose(0, 1)
    dense = None
    if dense_layers:
        dense = layers[list(dense_layers), n_prompt - 1 : n_prompt + total - 1].transpose(0, 1)
        dense = dense.half().numpy()
    return Capture(all_steps, (total - all_steps).astype(np.int64), rows.half().numpy(), dense)
