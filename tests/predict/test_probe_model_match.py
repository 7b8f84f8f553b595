"""A probe names the model it reads (a fingerprint of its config); an engine serving another
model refuses it at load, even at the same hidden size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.predict.test_train_cli import fake_profile
from tests.support.known_probe import write_known_probe
from trail.cli.train import app
from trail.lab.learn.shards import read_manifest, write_manifest
from trail.predict.probe import ProbeBundle, fingerprint_of, model_fingerprint

SHIPPED = Path(__file__).resolve().parents[2] / "trail" / "assets" / "smollm2" / "probe"
SMOLLM2 = "9913cbb8004bf78e"  # the shipped probe's; a change here would orphan every probe


def test_the_fingerprint_is_stable_and_tells_models_apart(smollm2_path, tiny_arch_paths) -> None:
    assert fingerprint_of(smollm2_path) == SMOLLM2 == ProbeBundle.load(SHIPPED).model_fingerprint
    tiny = {arch: fingerprint_of(path) for arch, path in tiny_arch_paths.items()}
    assert len(set(tiny.values()) | {SMOLLM2}) == len(tiny) + 1
    # runtime settings and TRAIL's own config attribute do not change it
    config = json.loads((tiny_arch_paths["llama"] / "config.json").read_text())
    config |= {"dtype": "bfloat16", "_name_or_path": "/elsewhere", "trail_aux_layers": [1, 2]}
    assert model_fingerprint(config) == tiny["llama"]
    assert fingerprint_of("no/such-model") is None


def test_the_engine_side_object_gives_the_file_side_fingerprint(tiny_arch_paths) -> None:
    from transformers import AutoConfig

    for path in tiny_arch_paths.values():
        assert model_fingerprint(AutoConfig.from_pretrained(path)) == fingerprint_of(path)


def test_a_trained_probe_card_names_its_model(tmp_path: Path, tiny_path: Path) -> None:
    root = tmp_path / "profile"
    fake_profile(root)
    manifest = read_manifest(root)
    assert manifest is not None
    manifest["settings"]["model"] = str(tiny_path)
    write_manifest(root, manifest)
    out = tmp_path / "probe"
    args = ["probe", "--layer", "7", "--epochs", "2", "--profile", str(root), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = ProbeBundle.load(out)
    assert bundle.card["model"] == {
        "name": tiny_path.name,
        "path": str(tiny_path),
        "fingerprint": fingerprint_of(tiny_path),
    }
    assert (
        bundle.model_fingerprint == fingerprint_of(tiny_path) and bundle.model_name == "tiny-llama"
    )


def test_older_probe_cards_name_no_fingerprint(tmp_path: Path) -> None:
    bundle = ProbeBundle.load(write_known_probe(tmp_path / "p"))
    assert bundle.model_fingerprint is None and bundle.model_name is None
    bundle.card["model"] = "smollm2-135m-instruct"  # before fingerprints: a name
    assert bundle.model_fingerprint is None and bundle.model_name == "smollm2-135m-instruct"


@pytest.mark.engine
def test_an_engine_refuses_a_probe_of_another_model_of_its_hidden_size(
    tiny_arch_paths, tmp_path
) -> None:
    from trail.engine.run_scenario import run_in_subprocess

    llama, qwen = tiny_arch_paths["llama"], tiny_arch_paths["qwen2"]
    probe = write_known_probe(tmp_path / "qwen-probe")  # reads 128-wide states, as both do
    bundle = ProbeBundle.load(probe)
    bundle.card["model"] = {
        "name": qwen.name,
        "path": str(qwen),
        "fingerprint": fingerprint_of(qwen),
    }
    bundle.save(probe)
    trail = {"policy": "trail", "probe_path": str(probe)}
    engine = {"model": str(llama), "in_process": True, "trail": trail}
    spec = {"engine": engine, "phases": [[{"id": "0", "prompt_ids": [1, 2, 3], "params": {}}]]}
    with pytest.raises(RuntimeError) as err:
        run_in_subprocess(spec, tmp_path, timeout=600)
    text = str(err.value)
    assert f"trained for tiny-qwen2 (model fingerprint {fingerprint_of(qwen)})" in text, text[
        -2000:
    ]
    # the engine computes the served model's fingerprint as training does
    assert f"serves tiny-llama (LlamaForCausalLM, fingerprint {fingerprint_of(llama)})" in text
    assert "trail train probe" in text


def test_hot_reload_refuses_a_probe_of_another_model() -> None:
    """A swap in a running engine skips the start-up checks: it must refuse on its own."""
    import copy

    from trail.engine.reload import IncompatibleProbe, check_compatible
    from trail.predict.bins import LengthBins
    from trail.predict.probe import ProbeBundle, ProbeMLP

    bins = LengthBins.uniform(8, 128)
    running = ProbeBundle(
        probe=ProbeMLP(hidden=16, k=bins.k),
        layer=1,
        bins=bins,
        card={"model": {"name": "a", "fingerprint": "aaaa"}},
    )
    same = copy.deepcopy(running)
    check_compatible(running, same)
    other = copy.deepcopy(running)
    other.card = {"model": {"name": "b", "fingerprint": "bbbb"}}
    with pytest.raises(IncompatibleProbe, match="trained for model bbbb"):
        check_compatible(running, other)
