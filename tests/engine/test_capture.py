"""The captured layer-k vector equals transformers' output_hidden_states[k+1] for the same
tokens: the last prompt token and each decode step, eager and compiled, in-process and multiprocess.

Tolerance: both sides run fp32 from the same weights; they differ only in kernel summation
order (vLLM's CPU attention/GEMMs vs PyTorch SDPA), ~1e-6 relative per op. Over a few layers
that stays far below 1e-4 relative (L2), while a wrong layer, wrong row or wrong request differs
by O(1): the check separates them by orders of magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.engine import base_id, read_events

PROMPTS = ["Tell me about the moon.", "List three prime numbers and explain why they are prime."]
N_OUT = 6
REL_TOL = 1e-4


def _expected_vectors(model_path, layer, prompt_ids, output_ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    expected = []
    for ids, out in zip(prompt_ids, output_ids, strict=True):
        seq = torch.tensor([ids + out[:-1]])
        with torch.no_grad():
            hs = model(seq, output_hidden_states=True).hidden_states[layer + 1][0]
        p = len(ids)
        vectors = {}
        for g in range(len(out)):  # g = 0: the last prompt token, whose logits sampled token 0
            vectors[g] = hs[p + g - 1].numpy()
        expected.append(vectors)
    return expected


def check_capture(
    model_path, layer, run_scenario, tmp_path, eager=True, in_process=True, probe=None, preload=()
):
    """Run two requests with capture on; every probe event the scheduler logged must carry the
    row transformers computes for the same tokens at `layer` (and refined predictions when a
    probe runs). Returns the probe events."""
    from transformers import AutoTokenizer

    from trail.models.chat import chat_prompt_ids

    tok = AutoTokenizer.from_pretrained(str(model_path))
    prompt_ids = [chat_prompt_ids(tok, p) for p in PROMPTS]
    dump = tmp_path / f"events-{eager}-{in_process}.jsonl"
    trail = {"policy": "fcfs", "layer": layer, "capture": True, "ship_vectors": True}
    if probe is not None:
        trail = {"policy": "trail", "probe_path": str(probe), "ship_vectors": True}
    engine = {
        "model": str(model_path),
        "dtype": "float32",
        "enforce_eager": eager,
        "in_process": in_process,
        "max_num_seqs": 4,
        "trail": {**trail, "dump_path": str(dump)},
    }
    arrivals = [
        {"id": str(i), "prompt_ids": ids, "params": {"max_tokens": N_OUT, "ignore_eos": True}}
        for i, ids in enumerate(prompt_ids)
    ]
    result = run_scenario(engine, [arrivals], preload=preload)
    outputs = [result[str(i)]["token_ids"] for i in range(len(PROMPTS))]
    expected = _expected_vectors(model_path, layer, prompt_ids, outputs)

    events = [e for e in read_events(dump) if e["event"] == "probe"]
    seen = 0
    for e in events:
        want = expected[int(base_id(e["id"]))][e["at"]]
        got = np.asarray(e["vector"], dtype=np.float32)
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < REL_TOL, f"request {e['id']} at {e['at']}: relative error {rel:.2e}"
        if probe is not None:
            assert e["probs"] is not None and e["expected"] is not None, e
        seen += 1
    # one last-prompt-token vector + (N_OUT - 1) decode vectors per request
    assert seen == len(PROMPTS) * N_OUT
    assert {e["at"] for e in events} == set(range(N_OUT))
    return events


@pytest.mark.engine
@pytest.mark.parametrize("eager", [True, False], ids=["eager", "compiled"])
@pytest.mark.parametrize("in_process", [True, False], ids=["inproc", "multiproc"])
def test_capture_matches_transformers_tiny(tiny_path, run_scenario, tmp_path, eager, in_process):
    check_capture(tiny_path, 1, run_scenario, tmp_path, eager, in_process)


@pytest.mark.engine
def test_capture_matches_transformers_smollm2(smollm2_path, run_scenario, tmp_path):
    check_capture(smollm2_path, 14, run_scenario, tmp_path, eager=True, in_process=False)
