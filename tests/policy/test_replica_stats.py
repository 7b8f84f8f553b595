"""ReplicaStats, the replica -> router contract: the wire form round-trips, and anything a
different version might send (a key missing, renamed or of another type) is refused by name."""

from __future__ import annotations

import json

import pytest

from tests.support.replica_stats import stats_of
from trail.policy.replica_stats import ReplicaStats, ReplicaStatsError


def test_the_wire_form_round_trips_through_json() -> None:
    stats = stats_of([5, 300], running=2, seen=("a", "b"), prefill_weight=0.25, kv_free_blocks=3)
    wire = stats.to_dict()
    assert wire["seen"] == ["a", "b"] and isinstance(wire["remaining_hist"], list)
    assert ReplicaStats.from_dict(json.loads(json.dumps(wire))) == stats


def test_ints_are_taken_as_floats_and_lists_as_tuples() -> None:
    stats = stats_of(work_tokens=7, seen=["x"], engine_load_ts=3)
    assert stats.work_tokens == 7.0 and isinstance(stats.work_tokens, float)
    assert stats.seen == ("x",) and stats.engine_load_ts == 3.0


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d.pop("ts"), "missing ['ts'], unknown []"),
        (
            lambda d: d.update(work=d.pop("work_tokens")),
            "missing ['work_tokens'], unknown ['work']",
        ),
        (lambda d: d.update(extra=1), "unknown ['extra']"),
    ],
)
def test_a_missing_or_unknown_key_is_refused(change, says) -> None:
    wire = stats_of().to_dict()
    change(wire)
    with pytest.raises(ReplicaStatsError, match=r"replica stats: .*") as refused:
        ReplicaStats.from_dict(wire)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("running", "3", "running: int expected, got str"),
        ("running", True, "running: int expected, got bool"),
        ("running", 3.0, "running: int expected, got float"),
        ("work_tokens", None, "work_tokens: float expected, got NoneType"),
        ("prefill_weight", "0.2", "prefill_weight: float expected, got str"),
        ("seen", ["a", 2], "seen[1]: str expected, got int"),
        ("seen", "ab", "seen: tuple expected, got str"),
        ("remaining_hist", [1.0, 2.0], "remaining_hist: 11 buckets expected"),
    ],
)
def test_a_wrong_type_is_refused_by_field(field, value, says) -> None:
    wire = stats_of().to_dict() | {field: value}
    with pytest.raises(ReplicaStatsError) as refused:
        ReplicaStats.from_dict(wire)
    assert says in str(refused.value)
    with pytest.raises(ReplicaStatsError):  # the producer cannot build it either
        stats_of(**{field: value})


def test_only_a_mapping_is_parsed() -> None:
    with pytest.raises(ReplicaStatsError, match="mapping"):
        ReplicaStats.from_dict([("ts", 1.0)])  # type: ignore[arg-type]
