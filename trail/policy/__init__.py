"""Pure scheduling policy: ranks, limited preemption, victim choice, aging.

No framework imports. The vLLM scheduler (trail.engine) and the simulator (trail.sim) both drive
these functions, so what the simulator shows is what the engine does.
"""

from trail.policy.rank import (
    effective_rank,
    is_preemptible,
    kv_pressure_victim,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    sort_key,
)
from trail.policy.spec import POLICIES, PolicyConfig, PredictionSource, get_policy
from trail.policy.state import LengthState

__all__ = [
    "POLICIES",
    "LengthState",
    "PolicyConfig",
    "PredictionSource",
    "effective_rank",
    "get_policy",
    "is_preemptible",
    "kv_pressure_victim",
    "order_waiting",
    "plan_preemptions",
    "predicted_remaining",
    "sort_key",
]
