"""The `vllm serve` door on vLLM's EngineArgs, no engine started: without TRAIL settings the
wrapped create_engine_config is vLLM's own; with them (TRAIL_CONFIG or --hf-overrides) the
config is what our EngineConfig builds; a foreign --scheduler-cls is refused."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from vllm.engine.arg_utils import EngineArgs

from trail.engine.engine_args_hook import (
    ENV_VAR,
    create_with_trail,
    install_engine_args_hook,
    parse_trail_config,
)
from trail.engine.engine_config import (
    ASYNC_SCHEDULER_CLS,
    SCHEDULER_CLS,
    V2_RUNNER_ENV,
    EngineConfig,
)
from trail.engine.overrides import TrailOverrides
from trail.engine.trail_config import TrailConfig


@pytest.fixture
def args(tiny_path, monkeypatch):  # noqa: ANN201
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv(V2_RUNNER_ENV, "0")  # the wrapper writes it: restored after the test
    install_engine_args_hook()

    def make(**kw) -> EngineArgs:  # noqa: ANN003
        return EngineArgs(model=str(tiny_path), dtype="float32", max_model_len=512, **kw)

    return make


def _summary(cfg) -> tuple:  # noqa: ANN001
    sched = cfg.scheduler_config
    overrides = cfg.model_config.hf_overrides
    return (
        sched.scheduler_cls,
        sched.policy,
        sched.async_scheduling,
        overrides,
        cfg.compute_hash(),
    )


def test_without_trail_settings_the_wrapper_is_vllms_own_method(args) -> None:
    wrapped = EngineArgs.create_engine_config
    assert wrapped.__wrapped__ is not wrapped  # installed, once
    install_engine_args_hook()
    assert EngineArgs.create_engine_config is wrapped  # idempotent
    assert _summary(args().create_engine_config()) == _summary(wrapped.__wrapped__(args()))
    explicit = args(scheduler_cls="vllm.v1.core.sched.scheduler.Scheduler")
    assert explicit.create_engine_config().scheduler_config.scheduler_cls == explicit.scheduler_cls


def test_trail_config_env_gives_what_engine_config_builds(args, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(V2_RUNNER_ENV, "")
    monkeypatch.setenv(ENV_VAR, json.dumps({"policy": "trail-oracle", "c": 0.5}))
    engine_args = args()
    cfg = engine_args.create_engine_config()
    ours = EngineConfig(trail=TrailConfig(policy="trail-oracle", c=0.5)).engine_kwargs()
    sched = cfg.scheduler_config
    assert sched.scheduler_cls == ours["scheduler_cls"] == SCHEDULER_CLS  # CPU: sync
    assert sched.policy == ours["scheduling_policy"] == "priority"
    overrides = cfg.model_config.hf_overrides
    assert (
        isinstance(overrides, TrailOverrides)
        and overrides.settings == ours["hf_overrides"].settings
    )
    assert os.environ[V2_RUNNER_ENV] == "0"  # forced before EngineCore and workers start
    assert engine_args.hf_overrides == {} and engine_args.scheduler_cls is None  # args restored
    # the same settings as a YAML file
    path = tmp_path / "trail.yaml"
    path.write_text("policy: trail-oracle\nc: 0.5\n")
    assert parse_trail_config(str(path)) == {"policy": "trail-oracle", "c": 0.5}


def test_hf_overrides_carrier_and_our_own_overrides(args, monkeypatch) -> None:
    cfg = args(hf_overrides={"trail": {"policy": "fcfs", "replica": "r1"}}).create_engine_config()
    assert cfg.scheduler_config.scheduler_cls == SCHEDULER_CLS
    assert cfg.model_config.hf_overrides.trail.replica == "r1"
    assert not hasattr(cfg.model_config.hf_config, "trail")  # nothing of it in the hashed config
    # a TrailOverrides from our own EngineConfig is left alone (TRAIL_CONFIG does not override it)
    monkeypatch.setenv(ENV_VAR, '{"policy": "trail-oracle"}')
    ours = EngineConfig(model=args().model, max_model_len=512, trail=TrailConfig(policy="fcfs"))
    cfg = EngineArgs(**ours.engine_kwargs()).create_engine_config()
    assert cfg.model_config.hf_overrides.trail.policy == "fcfs"


def test_the_class_follows_the_async_mode_vllm_resolved(args) -> None:
    """CPU vLLM never schedules asynchronously; a stand-in for vLLM's method resolves it on, as
    vLLM does on GPUs, after TRAIL's args went in."""
    seen = {}

    def resolve_async(engine_args):  # noqa: ANN001, ANN202
        seen["policy"] = engine_args.scheduling_policy
        sched = SimpleNamespace(async_scheduling=True, scheduler_cls=engine_args.scheduler_cls)
        return SimpleNamespace(scheduler_config=sched)

    engine_args = args(hf_overrides={"trail": {"policy": "fcfs"}})
    cfg = create_with_trail(resolve_async, engine_args)
    assert cfg.scheduler_config.scheduler_cls == ASYNC_SCHEDULER_CLS and seen == {
        "policy": "priority"
    }
    assert engine_args.scheduling_policy == "fcfs"  # restored


def test_refuses_what_trail_cannot_honour(args, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, '{"policy": "trail-oracle"}')
    with pytest.raises(ValueError, match="is not TRAIL's scheduler"):
        args(scheduler_cls="my.pkg.MyScheduler").create_engine_config()
    with pytest.raises(ValueError, match="replace"):
        args(hf_overrides={"rope_theta": 1.0}).create_engine_config()
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ValueError, match="other keys"):
        args(hf_overrides={"trail": {}, "rope_theta": 1.0}).create_engine_config()
    monkeypatch.setenv(ENV_VAR, "/no/such/trail.json")
    with pytest.raises(ValueError, match="neither inline JSON nor an existing file"):
        args().create_engine_config()
