"""TRAIL from vLLM's own engine arguments: the door for plain `vllm serve` (and any caller that
builds `EngineArgs` itself).

`vllm serve` cannot pass a Python object, so TRAIL's settings arrive as data: the environment
variable `TRAIL_CONFIG` (a JSON/YAML file, or inline JSON, of TrailConfig fields) or
`--hf-overrides '{"trail": {...}}'`. The plugin wraps `EngineArgs.create_engine_config`, the one
call every door makes in the process that builds the VllmConfig, and turns that data into what
our own EngineConfig passes (trail_engine_args). The scheduler class is picked *after* vLLM and
the platform resolve async scheduling, as vLLM does for its own diffusion scheduler. Without
TRAIL settings, or with a TrailOverrides already there (our app), the wrapper calls vLLM's method
unchanged.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "TRAIL_CONFIG"
HF_KEY = "trail"  # --hf-overrides '{"trail": {...}}'
_MARK = "_trail_hook"


def parse_trail_config(text: str) -> dict[str, Any]:
    """TrailConfig fields from inline JSON or from a .json/.yaml/.yml file."""
    text = text.strip()
    if text.startswith("{"):
        data = json.loads(text)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"{ENV_VAR}={text!r}: neither inline JSON nor an existing file")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{ENV_VAR} must hold a mapping of TrailConfig fields, got {data!r}")
    return data


def requested_trail(args: Any) -> dict[str, Any] | None:
    """The TRAIL settings these engine args carry as data, or None (no TRAIL, or TRAIL already
    set up as a TrailOverrides by our own EngineConfig). Cheap: imports nothing."""
    overrides = args.hf_overrides
    if isinstance(overrides, dict) and HF_KEY in overrides:
        extra = sorted(set(overrides) - {HF_KEY})
        if extra:
            raise ValueError(
                f"--hf-overrides with {HF_KEY!r} cannot carry other keys too ({extra}): "
                "TRAIL's overrides replace the dict"
            )
        return dict(overrides[HF_KEY] or {})
    if overrides is not None and not isinstance(overrides, dict):
        return None  # a callable: TrailOverrides from our app, or someone else's
    env = os.environ.get(ENV_VAR, "").strip()
    if not env:
        return None
    if overrides:
        raise ValueError(f"{ENV_VAR} is set: TRAIL's overrides would replace {overrides!r}")
    return parse_trail_config(env)


def check_scheduler_cls(explicit: Any) -> None:
    """An explicit --scheduler-cls must be TRAIL's (either one: the wrapper picks the match)."""
    from trail.engine.engine_config import ASYNC_SCHEDULER_CLS, SCHEDULER_CLS

    if explicit is None:
        return
    name = explicit if isinstance(explicit, str) else f"{explicit.__module__}.{explicit.__name__}"
    if name not in (SCHEDULER_CLS, ASYNC_SCHEDULER_CLS):
        raise ValueError(
            f"TRAIL settings are given ({ENV_VAR} or --hf-overrides '{{\"{HF_KEY}\": ...}}'), "
            f"but --scheduler-cls {name} is not TRAIL's scheduler: drop --scheduler-cls "
            f"(TRAIL picks {SCHEDULER_CLS} or {ASYNC_SCHEDULER_CLS}) or drop the TRAIL settings"
        )


def create_with_trail(original: Any, args: Any, *a: Any, **kw: Any) -> Any:
    """vLLM's create_engine_config with TRAIL's engine args in place (restored afterwards, so a
    second call on the same args sees the data again), then TRAIL's scheduler class for the
    async mode vLLM resolved."""
    settings = requested_trail(args)
    if settings is None:
        return original(args, *a, **kw)
    from trail.engine.engine_config import (
        force_v1_runner,
        lane_seats,
        scheduler_cls_for,
        trail_engine_args,
    )
    from trail.engine.scheduler_hooks import check_single_pipeline_stage
    from trail.engine.trail_config import TrailConfig

    check_scheduler_cls(args.scheduler_cls)
    check_single_pipeline_stage(int(args.pipeline_parallel_size or 1))
    force_v1_runner()  # in this process, before EngineCore and workers inherit the environment
    trail = TrailConfig.model_validate(settings)
    trail_args = trail_engine_args(trail)
    saved = {name: getattr(args, name) for name in trail_args}
    for name, value in trail_args.items():
        setattr(args, name, value)
    try:
        cfg = original(args, *a, **kw)
    finally:
        for name, value in saved.items():
            setattr(args, name, value)
    sched = cfg.scheduler_config
    sched.scheduler_cls = scheduler_cls_for(bool(sched.async_scheduling))
    seats = lane_seats(trail)
    if seats:  # the decode batch stays as sized; the lane comes on top, before the runner
        sched.max_num_seqs += seats  # sizes its batch from it
    return cfg


def install_engine_args_hook() -> None:
    """Wrap EngineArgs.create_engine_config once per process (the plugin runs more than once)."""
    from vllm.engine.arg_utils import EngineArgs

    original = EngineArgs.create_engine_config
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def create_engine_config(self: Any, *a: Any, **kw: Any) -> Any:
        return create_with_trail(original, self, *a, **kw)

    setattr(create_engine_config, _MARK, True)
    EngineArgs.create_engine_config = create_engine_config  # type: ignore[method-assign]
