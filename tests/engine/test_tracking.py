"""What the scheduler learns from a request's sampling params (no engine needed)."""

from __future__ import annotations

from types import SimpleNamespace

from trail.engine.tracking import initial_from_request
from trail.policy.rank import predicted_remaining
from trail.policy.spec import PolicyConfig, PredictionSource
from trail.predict.bins import LengthBins

BINS = LengthBins.uniform(8, 128)


def tracked(**trail):  # noqa: ANN201
    sp = SimpleNamespace(extra_args={"trail": {"initial_pred": 100.0, **trail}}, max_tokens=5,
                         ignore_eos=True)  # fmt: skip
    return initial_from_request(SimpleNamespace(request_id="r", sampling_params=sp), BINS, 9.0, 0.0)


def test_max_tokens_caps_the_ranking_unless_the_request_says_not_to():
    cfg = PolicyConfig(source=PredictionSource.PROMPT)
    capped, blind = tracked(), tracked(use_max_tokens=False)
    assert predicted_remaining(capped.length, cfg) == 5.0  # ignore_eos + max_tokens: the length
    assert blind.length.max_tokens is None
    assert predicted_remaining(blind.length, cfg) == 100.0  # the prompt prediction, uncapped
    # the oracle still knows the true length (ignore_eos generates exactly max_tokens)
    assert blind.length.true_total == capped.length.true_total == 5


def test_flat_vllm_xargs_keys_as_plain_vllm_serve_clients_send_them():
    """vllm_xargs holds no nested objects: `trail_<key>` reads as extra_args["trail"][key]; the
    nested dict (our ingress) wins where both are given."""
    extra = {"trail_initial_pred": 12, "trail_true_len": 40, "trail_use_max_tokens": "false"}
    sp = SimpleNamespace(extra_args=extra, max_tokens=5, ignore_eos=False)
    t = initial_from_request(SimpleNamespace(request_id="r", sampling_params=sp), BINS, 9.0, 0.0)
    assert (t.length.initial_pred, t.length.true_total, t.length.max_tokens) == (12.0, 40, None)
    sp.extra_args = {**extra, "trail_use_max_tokens": 1, "trail": {"initial_pred": 7.0}}
    t = initial_from_request(SimpleNamespace(request_id="r", sampling_params=sp), BINS, 9.0, 0.0)
    assert (t.length.initial_pred, t.length.max_tokens) == (7.0, 5)
