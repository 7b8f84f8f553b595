"""Pure scheduling policy: ranks, limited preemption, victim choice, aging.

No framework imports. The vLLM scheduler (trail.engine) and the simulator (trail.lab.sim) both drive
these functions, so what the simulator shows is what the engine does.
"""

from trail.policy.cost import DEFAULT_STEP_COST, StepCost, StepCostEstimator
from trail.policy.rank import (
    Capacity,
    Preemption,
    effective_rank,
    is_preemptible,
    kv_pressure_victim,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    promote_starving,
    sort_key,
)
from trail.policy.spec import POLICIES, PolicyConfig, PredictionSource, get_policy
from trail.policy.state import LengthState

__all__ = [
    "DEFAULT_STEP_COST",
    "POLICIES",
    "Capacity",
    "Preemption",
    "StepCost",
    "StepCostEstimator",
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
    "promote_starving",
    "sort_key",
]
