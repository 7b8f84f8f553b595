"""Unit checks behind the hostile-input and disconnect tests (no Ray, no engine)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from trail.engine.load import EngineLoad, LoadPublisher, read_load
from trail.engine.tracking import initial_from_request
from trail.predict.bins import LengthBins


def load(running: int) -> EngineLoad:
    return EngineLoad(0.0, 0, running, 0, 0.0, kv_free_blocks=10, kv_total_blocks=10)


def test_going_idle_is_always_published(tmp_path):
    path = tmp_path / "load.json"
    pub, seen = LoadPublisher(str(path), period_s=3600), []
    pub.maybe_publish(lambda: load(2), seen.append)  # first: published
    pub.maybe_publish(lambda: load(1), seen.append)  # within the period: skipped
    pub.maybe_publish(lambda: load(0), seen.append, idle=True)  # went idle: published
    pub.maybe_publish(lambda: load(0), seen.append, idle=True)  # still idle: skipped
    assert [x.running for x in seen] == [2, 0]
    last = read_load(path, max_age_s=float("inf"))
    assert last is not None and last.running == 0 and last.kv_free_blocks == 10


def test_old_load_files_without_kv_fields_still_read(tmp_path):
    path = tmp_path / "load.json"
    old = {"predicted_remaining_tokens": 1.0, "prefill_tokens_pending": 0, "running": 1}
    path.write_text(json.dumps({**old, "waiting": 0, "ts": 0.0}))
    assert read_load(path, max_age_s=float("inf")).kv_total_blocks == -1


def test_a_distribution_over_other_bins_does_not_break_the_scheduler():
    """A prompt predictor with 10 bins beside a probe with 8 killed the EngineCore."""
    bins = LengthBins.uniform(8, 128)
    extra = {"trail": {"initial_dist": [0.1] * 10, "initial_pred": 42.0}}
    sp = SimpleNamespace(extra_args=extra, max_tokens=16, ignore_eos=False)
    t = initial_from_request(SimpleNamespace(request_id="r", sampling_params=sp), bins, 99.0, 0.0)
    assert t.length.initial_pred == 42.0 and t.posterior is None
