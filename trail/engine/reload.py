"""Hot reload of the probe in a running engine, without a restart or a dropped request.

The probe lives in the worker (where the hidden states are), so a new one travels by vLLM's
`collective_rpc` and replaces the old between two steps: requests in flight keep their
posterior and simply get the new probe's outputs from the next probe step on. The scheduler's
refinement is not touched, so a new probe must predict over the same bins from the same layer
(retraining from served traffic keeps both); anything else is refused before the swap.
"""

from __future__ import annotations

from typing import Any

SWAP_PROBE = "trail_swap_probe"  # the worker method the plugin installs (vllm_hooks)


class IncompatibleProbe(ValueError):
    """The new probe cannot replace the running one in place (needs a restart)."""


def check_compatible(old: Any, new: Any) -> None:
    """Same layer, same bins, same position convention: the scheduler's posterior stays valid."""
    if old is None:
        raise IncompatibleProbe("this engine runs no probe (the policy does not need one)")
    for name in ("layer", "positional", "cap"):
        if getattr(old, name) != getattr(new, name):
            raise IncompatibleProbe(
                f"probe {name} {getattr(new, name)!r} != running {getattr(old, name)!r}"
            )
    if old.bins.to_list() != new.bins.to_list():
        raise IncompatibleProbe("probe bins differ from the running probe's")
    ours, theirs = old.model_fingerprint, new.model_fingerprint
    if ours is not None and theirs is not None and ours != theirs:
        raise IncompatibleProbe(
            f"probe trained for model {theirs} ({new.model_name}), this engine serves {ours}"
        )


def swap_probe(worker: Any, path: str) -> str:
    """collective_rpc target, run in each worker: load, check, swap; returns the new version."""
    from trail.predict.probe import ProbeBundle

    capture = getattr(worker.model_runner, "_trail", None)  # capture.WorkerCapture
    new = ProbeBundle.load(path)
    check_compatible(None if capture is None else capture.probe, new)
    capture.probe = new
    return new.version


async def reload_probe(engine: Any, path: str, running: Any) -> Any:
    """Swap the probe in every worker of an AsyncLLM; returns the new ProbeBundle. Checked
    here first (IncompatibleProbe), so a refusal never reaches the engine."""
    from trail.predict.probe import ProbeBundle

    new = ProbeBundle.load(path)
    check_compatible(running, new)
    versions = await engine.collective_rpc(SWAP_PROBE, args=(path,))
    if set(versions) != {new.version}:
        raise RuntimeError(f"workers run {versions} after loading {new.version}")
    return new
