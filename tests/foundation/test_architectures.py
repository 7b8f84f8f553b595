"""TRAIL serves exactly the models whose vLLM class gives aux hidden states, and refuses the rest
by name (trail/engine/architectures.py); the tiny models of each family are built reproducibly."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from trail.engine import architectures as archs
from trail.models import prepare as prep
from trail.models.paths import TINY_ARCHS, smollm2_dir, tiny_dir

ROOT = Path(__file__).resolve().parents[2]
SERVED_TINY_CLASSES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "granite": "GraniteForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "olmo2": "TransformersForCausalLM",  # vLLM runs OLMo2 on its Transformers backend
}


def test_every_tiny_architecture_but_one_is_served():
    assert set(SERVED_TINY_CLASSES) | {prep.TINY_REFUSED_ARCH} == set(TINY_ARCHS)


@pytest.mark.parametrize("arch", sorted(SERVED_TINY_CLASSES))
def test_tiny_architecture_resolves_to_its_vllm_class(arch, tiny_arch_paths):
    declared = archs.model_architectures(tiny_arch_paths[arch])
    assert archs.check_architecture(declared) == SERVED_TINY_CLASSES[arch]


def test_architecture_without_aux_hidden_states_is_refused_by_name(tiny_arch_paths):
    declared = archs.model_architectures(tiny_arch_paths[prep.TINY_REFUSED_ARCH])
    assert declared == ["GPT2LMHeadModel"]
    with pytest.raises(archs.UnsupportedModel) as refused:
        archs.check_architecture(declared)
    message = str(refused.value)
    assert "GPT2LMHeadModel" in message and "SupportsEagle3" in message
    assert "LlamaForCausalLM" in message and archs.DOCS_PAGE in message
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (["NoSuchModelForCausalLM"], "NoSuchModelForCausalLM.*is registered in vLLM"),
        ([], "names no architecture"),
        (["LlamaBidirectionalModel"], "pooling"),  # its class has the interface; not generative
    ],
)
def test_other_refusals_say_why(declared, reason):
    with pytest.raises(archs.UnsupportedModel, match=reason):
        archs.check_architecture(declared)


def test_first_registered_architecture_decides():
    assert archs.check_architecture(["NoSuchModelForCausalLM", "Qwen2ForCausalLM"]) == (
        "Qwen2ForCausalLM"
    )


def test_supported_list_has_the_families_and_not_gpt2():
    supported = archs.supported_architectures()
    for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        assert arch in supported
    assert "GPT2LMHeadModel" not in supported
    assert supported == sorted(supported)
    assert not any(arch.startswith("Eagle") for arch in supported), "drafts are not served"


def test_reading_from_source_agrees_with_vllms_runtime_check():
    """The static reading and `supports_eagle3(cls)` on the imported classes of the tiny
    architectures (the slow test below covers every importable class)."""
    from vllm.model_executor.models.interfaces import supports_eagle3

    for arch in [*SERVED_TINY_CLASSES.values(), "Olmo2ForCausalLM", "GPT2LMHeadModel"]:
        vllm_class = archs.registered_class(arch)
        cls = getattr(importlib.import_module(vllm_class.module), vllm_class.class_name)
        assert archs.class_supports_aux_hidden_states(vllm_class) == supports_eagle3(cls), arch


@pytest.mark.slow
def test_reading_from_source_agrees_on_every_importable_class():
    """Names vLLM binds per platform (a CPU stub beside the CUDA class) are left out: the
    reading takes the GPU view there on purpose."""
    from vllm.model_executor.models.interfaces import supports_eagle3

    checked = 0
    for arch, vllm_class in archs.generation_architectures().items():
        symbols = archs._symbols(vllm_class.module)
        if symbols is None or len(symbols.bindings.get(vllm_class.class_name, [])) != 1:
            continue
        try:
            cls = getattr(importlib.import_module(vllm_class.module), vllm_class.class_name)
        except Exception:  # optional packages (torchvision, torchaudio) missing here
            continue
        assert archs.class_supports_aux_hidden_states(vllm_class) == supports_eagle3(cls), arch
        checked += 1
    assert checked > 150


def test_docs_page_is_current():
    page = ROOT / archs.DOCS_PAGE
    assert page.read_text() == archs.markdown(), (
        f"{archs.DOCS_PAGE} is stale: regenerate it with "
        f"`python -m trail.engine.architectures --markdown > {archs.DOCS_PAGE}`"
    )


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_build_is_deterministic_and_idempotent(arch, tmp_path, tiny_arch_paths):
    out = tmp_path / f"tiny-{arch}"
    source = smollm2_dir(tiny_arch_paths[arch].parent)
    _, done = prep.prepare_tiny_arch(arch, out, tokenizer_dir=source)
    assert done
    fresh = json.loads((out / prep.MANIFEST).read_text())
    cached = json.loads((tiny_arch_paths[arch] / prep.MANIFEST).read_text())
    assert fresh == cached, "a rebuild must give the cached folder's tensors"
    _, done_again = prep.prepare_tiny_arch(arch, out, tokenizer_dir=source)
    assert not done_again, "second run must be a no-op"


def test_tiny_llama_keeps_its_folder_and_key(tiny_path):
    assert tiny_dir() == tiny_path and tiny_path.name == "tiny-llama"
    manifest = json.loads((tiny_path / prep.MANIFEST).read_text())
    assert manifest["source_sha256"].startswith("tiny-seed0-from-")


def test_unknown_tiny_architecture_is_an_error():
    with pytest.raises(ValueError, match="unknown tiny architecture"):
        tiny_dir(arch="bert")


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_runs_in_transformers_with_hidden_states(arch, tiny_arch_paths):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_arch_paths[arch]
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Why is the sky blue?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    config = model.config
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert out.hidden_states[-1].shape == (1, ids.shape[1], config.hidden_size)
    assert out.logits.shape == (1, ids.shape[1], config.vocab_size)
    assert torch.isfinite(out.logits).all()
