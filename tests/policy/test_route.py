"""The replica score of trail/policy/route.py by hand (pure logic, shared by Serve and the sim)."""

from __future__ import annotations

import numpy as np

from trail.policy.route import HIST_VALUES, ReplicaViews, overlap, rank_replicas, remaining_hist


def test_histogram_buckets_and_overlap_by_hand() -> None:
    h = remaining_hist([5, 20, 20, 300])
    assert h.sum() == 4 and h[0] == 1 and h[2] == 2 and h[6] == 1  # [0,8) [16,32) [256,512)
    # bucket values 4, 24, 24, 384: min with 10 -> 4 + 10 + 10 + 10
    assert overlap(h[None, :], 10.0)[0] == 34.0
    assert overlap(h[None, :], 1000.0)[0] == 4 + 24 + 24 + 384
    # 20 steps later: 4 and 24 are gone or at 4, 384 is 364
    assert overlap(h[None, :], 1000.0, np.array([20.0]))[0] == 0 + 4 + 4 + 364


def test_free_slot_tier_then_overlap_then_waiting_work() -> None:
    hist = np.zeros((3, len(HIST_VALUES)))
    hist[0] = remaining_hist([24] * 4)
    hist[1] = remaining_hist([384])
    v = ReplicaViews.of(
        free_slots=[4, 4, 0],
        total_work=[96, 384, 0],
        waiting_work=[0, 0, 0],
        soonest_free=[0, 0, 0],
    )
    v = ReplicaViews(**{**v.__dict__, "hist": hist})
    assert rank_replicas(v, predicted_len=10).tolist() == [1, 0, 2]  # 10 < 40, full last
    assert rank_replicas(v, predicted_len=500).tolist() == [0, 1, 2]  # 96 < 384
    assert rank_replicas(v).tolist() == [0, 1, 2]  # no length: total work
    full = ReplicaViews.of(free_slots=[0, 0], waiting_work=[600, 0], soonest_free=[10, 200])
    assert rank_replicas(full).tolist() == [1, 0]


def test_equal_overlap_goes_to_the_replica_with_less_total_work() -> None:
    """A 4-token request overlaps a near-done request and a 400-token one equally (4 tokens);
    the replica whose work ends soon must win whatever the replica order."""
    hist = np.stack([remaining_hist([384]), remaining_hist([5])])
    v = ReplicaViews(
        **{**ReplicaViews.of(free_slots=[4, 4], total_work=[384, 5]).__dict__, "hist": hist}
    )
    assert overlap(hist, 4.0).tolist() == [4.0, 4.0]
    assert rank_replicas(v, predicted_len=4).tolist() == [1, 0]
    swapped = ReplicaViews(**{**v.__dict__, "hist": hist[::-1], "total_work": v.total_work[::-1]})
    assert rank_replicas(swapped, predicted_len=4).tolist() == [0, 1]
