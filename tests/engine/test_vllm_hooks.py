"""The pinned-vLLM guard: the hooks in trail/engine/vllm_hooks.py are only valid for one release."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trail.engine.vllm_hooks import PINNED_VLLM, check_vllm_version


def test_installed_vllm_is_the_pinned_one() -> None:
    check_vllm_version()  # the real installed package
    check_vllm_version(f"{PINNED_VLLM}+cpu")  # local build suffixes are the same release


def test_another_vllm_is_refused_with_the_fix_in_the_message() -> None:
    with pytest.raises(RuntimeError, match=rf"vllm=={re.escape(PINNED_VLLM)}"):
        check_vllm_version("0.33.0")


def test_pyproject_pins_the_same_release() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    pins = set(re.findall(r'"vllm(?:-cpu)?==([^"]+)"', pyproject))
    assert pins == {PINNED_VLLM}
