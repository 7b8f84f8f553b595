"""Redis key layout of one request's record (one place, so writer and reader agree).

``{prefix}{id}``          hash: scalar fields (replica, policy, prompt length, timestamps, ...)
``{prefix}{id}:traj``     list: refined trajectory points, in step order
``{prefix}{id}:preempt``  list: preemptions
``{prefix}~alias:{base}`` string: full engine id for an id without vLLM's ``-xxxxxxxx`` suffix
``{prefix}~finished``     sorted set: finished request ids scored by finish time (``recent``)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# vLLM's engine appends f"-{uuid4().hex[:8]}" to the caller's request id.
_ENGINE_SUFFIX = re.compile(r"^(?P<base>.+)-[0-9a-f]{8}$")


def strip_engine_suffix(request_id: str) -> str | None:
    """The id without vLLM's 8-hex-char suffix, or None when it has none."""
    match = _ENGINE_SUFFIX.match(request_id)
    return match.group("base") if match else None


@dataclass(frozen=True)
class Keys:
    prefix: str = "trail:req:"

    def record(self, request_id: str) -> str:
        return f"{self.prefix}{request_id}"

    def trajectory(self, request_id: str) -> str:
        return f"{self.prefix}{request_id}:traj"

    def preemptions(self, request_id: str) -> str:
        return f"{self.prefix}{request_id}:preempt"

    def alias(self, base_id: str) -> str:
        return f"{self.prefix}~alias:{base_id}"

    @property
    def finished_index(self) -> str:
        return f"{self.prefix}~finished"

    def per_request(self, request_id: str) -> tuple[str, str, str]:
        return self.record(request_id), self.trajectory(request_id), self.preemptions(request_id)
