"""Redis prediction store: per-request predictions, written best-effort off the hot loop.

See docs/observability.md. Records hold a prompt *hash*, never prompt text.
"""

from trail.store.embedded import ensure_redis, stop_embedded_redis
from trail.store.hashing import prompt_hash
from trail.store.keys import strip_engine_suffix
from trail.store.reader import StoreReader
from trail.store.record import Preemption, RequestRecord, TrajectoryPoint, online_accuracy
from trail.store.writer import PredictionStore

__all__ = [
    "PredictionStore",
    "Preemption",
    "RequestRecord",
    "StoreReader",
    "TrajectoryPoint",
    "ensure_redis",
    "online_accuracy",
    "prompt_hash",
    "stop_embedded_redis",
    "strip_engine_suffix",
]
