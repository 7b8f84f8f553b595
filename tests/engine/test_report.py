"""The opt-in prediction summary on a finished output (trail/engine/report.py), without an
engine: what it says, where it goes, and that nothing changes for a request that did not ask."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trail.engine.report import Reports, note_admission, summary
from trail.engine.tracking import initial_from_request
from trail.policy.spec import PolicyConfig, PredictionSource
from trail.predict.bins import LengthBins

BINS = LengthBins.uniform(8, 128)


def tracked(rid: str, **extra):  # noqa: ANN201
    sp = SimpleNamespace(extra_args=extra, max_tokens=50, ignore_eos=False)
    return initial_from_request(SimpleNamespace(request_id=rid, sampling_params=sp), BINS, 9.0, 0.0)


def out(rid: str, finished: bool = True, params: dict | None = None) -> SimpleNamespace:
    reason = 1 if finished else None
    return SimpleNamespace(request_id=rid, finish_reason=reason, kv_transfer_params=params)


def test_the_flag_reads_as_vllm_serve_clients_and_our_ingress_send_it():
    assert tracked("a", trail_return=True).report and tracked("a", trail_return="1").report
    assert tracked("a", trail={"return": True}).report
    assert not tracked("a").report and not tracked("a", trail_return="false").report


def test_summary_counts_from_vllm_and_the_last_refinement():
    t = tracked("chatcmpl-x-0123abcd", trail_initial_pred=30)
    note_admission(t, PolicyConfig(source=PredictionSource.PROMPT_COUNTDOWN), lane=True)
    assert t.admitted_pred is None  # a lane seat is prefill, not decode
    note_admission(t, PolicyConfig(source=PredictionSource.PROMPT_COUNTDOWN), lane=False)
    note_admission(t, PolicyConfig(source=PredictionSource.PROMPT_COUNTDOWN), lane=False)
    t.length.generated = 5  # a later admission (after a preemption) changes nothing
    t.length.refine(17.5, at=8)
    t.trajectory.append((8, 17.5))
    t.length.parks = 1
    s = summary(t, SimpleNamespace(num_output_tokens=21, num_preemptions=3))
    assert s == {
        "request_id": "chatcmpl-x",  # the record key: vLLM's suffix stripped
        "initial_pred": 30.0,
        "admitted_pred": 30.0,
        "final_pred": 25.5,  # 8 generated when it expected 17.5 more
        "refinements": 1,
        "generated": 21,
        "preemptions": 2,  # vLLM counts a park as a preemption
        "parks": 1,
    }
    assert (
        summary(tracked("b"), SimpleNamespace(num_output_tokens=0, num_preemptions=0))["final_pred"]
        is None
    )


def test_attached_only_to_the_asking_requests_finished_output():
    reports = Reports()
    asked, plain = tracked("asked", trail_return=1), tracked("plain")
    req = SimpleNamespace(num_output_tokens=4, num_preemptions=0)
    reports.freed(asked, SimpleNamespace(request_id="asked", **vars(req)))
    reports.freed(plain, SimpleNamespace(request_id="plain", **vars(req)))
    outs = [out("asked", params={"connector": 1}), out("plain"), out("other", finished=False)]
    result = reports.attach({0: SimpleNamespace(outputs=outs)})
    assert result[0].outputs is outs
    assert outs[0].kv_transfer_params["connector"] == 1  # a KV connector's keys are kept
    assert outs[0].kv_transfer_params["trail"]["generated"] == 4
    assert outs[1].kv_transfer_params is None and outs[2].kv_transfer_params is None
    assert not reports.pending  # an aborted request's summary (no output) is not kept either


N_OUT, EVERY = 12, 2


@pytest.mark.engine
def test_a_real_engine_reports_what_it_did_only_when_asked(
    tiny_path, known_probe, run_scenario, tmp_path
):
    """The summary rides the finished RequestOutput's kv_transfer_params: its final estimate is
    the scheduler's last refinement (from the event log) and its count the tokens returned."""
    from transformers import AutoTokenizer

    from tests.support.engine import base_id, read_events
    from trail.models.chat import chat_prompt_ids

    tok = AutoTokenizer.from_pretrained(str(tiny_path))
    dump = tmp_path / "events.jsonl"
    trail = {"policy": "trail", "probe_path": str(known_probe), "predict_every": EVERY}
    engine = {
        "model": str(tiny_path),
        "dtype": "float32",
        "trail": {**trail, "dump_path": str(dump)},
    }
    params = {"max_tokens": N_OUT, "ignore_eos": True}
    arrivals = [
        {
            "id": "asked",
            "prompt_ids": chat_prompt_ids(tok, "How long?"),
            "params": {**params, "extra_args": {"trail_return": True, "trail_initial_pred": 30}},
        },
        {"id": "plain", "prompt_ids": chat_prompt_ids(tok, "Not asked."), "params": params},
    ]
    done = run_scenario(engine, [arrivals])
    assert done["plain"]["kv_transfer_params"] is None  # vLLM's own value, untouched
    report = done["asked"]["kv_transfer_params"]["trail"]
    probes = [e for e in read_events(dump) if e["event"] == "probe" and base_id(e["id"]) == "asked"]
    last = probes[-1]
    assert report["request_id"] == "asked"
    assert report["generated"] == len(done["asked"]["token_ids"]) == N_OUT
    assert report["initial_pred"] == 30.0
    assert report["admitted_pred"] == 12.0  # the rank's estimate: capped by max_tokens
    assert report["refinements"] == len(probes) == len(range(0, N_OUT, EVERY))
    assert report["final_pred"] == pytest.approx(last["at"] + last["expected"])
    assert report["preemptions"] == report["parks"] == 0
