"""The opt-in prediction summary a finished request carries out of the engine.

A request that asks (`vllm_xargs: {"trail_return": true}`, or `extra_args["trail"]["return"]`
from our ingress) gets `{"trail": summary}` merged into its final `EngineCoreOutput`'s
`kv_transfer_params`. vLLM has no generic field for extra response data; that dict is the one
free-form value that travels from EngineCore to `RequestOutput.kv_transfer_params` and, in
`vllm serve`, into the non-streamed response body (None unless a KV connector fills it: any
keys a connector set are kept). Requests that do not ask are left exactly as vLLM made them.

The summary is taken when the scheduler frees the request (its `Tracked` leaves then) and
attached to that step's outputs after vLLM built them (`Scheduler.update_from_output`;
the vLLM internals are in scheduler_hooks.add_to_finished_outputs), so no vLLM method is
overridden beyond the ones the mixin already wraps. A stop *string* ends a request in the API
process (vLLM's detokenizer), not in the engine: such a request is aborted there and carries no
summary.

Fields (token counts of one sequence; see docs/serving.md, "Predictions in responses"):
  request_id     the engine's id without vLLM's random suffix (the record key of
                 GET /v1/trail/requests/{id})
  initial_pred   predicted output tokens at arrival (the prompt predictor, or the default)
  admitted_pred  predicted total output tokens when first admitted to decode, as the router's
                 work estimate counts it (capped by max_tokens; the true length under the
                 oracle); null if it never reached decode
  final_pred     the last refined prediction of total output tokens (tokens generated at the
                 refinement + the expected remaining then); null when no probe refined it
  refinements    probe outputs that went into the posterior
  generated      output tokens generated
  preemptions    times preempted (recompute), by TRAIL's policy or vLLM's KV pressure
  parks          times parked by the ranking lane (not preemptions)
"""

from __future__ import annotations

from typing import Any

from trail.engine.scheduler_hooks import add_to_finished_outputs
from trail.engine.tracking import Tracked
from trail.policy import PolicyConfig, predicted_remaining
from trail.store.keys import strip_engine_suffix

REPORT_KEY = "trail"  # in kv_transfer_params


def note_admission(t: Tracked, work_cfg: PolicyConfig, lane: bool) -> None:
    """Remember the predicted total at the first admission to decode (a lane seat is a
    prefill, not yet a decode slot)."""
    if not lane and t.admitted_pred is None:
        s = t.length
        t.admitted_pred = float(s.generated + predicted_remaining(s, work_cfg))


def summary(t: Tracked, request: Any) -> dict[str, Any]:
    """What the scheduler knew of this request, as plain JSON/msgpack values. Counts come from
    vLLM's request (exact at the finish) rather than the state synced at the last schedule()."""
    s = t.length
    final = None if s.refined_pred is None else float(s.refined_at + s.refined_pred)
    return {
        "request_id": strip_engine_suffix(s.request_id) or s.request_id,
        "initial_pred": float(s.initial_pred),
        "admitted_pred": t.admitted_pred,
        "final_pred": final,
        "refinements": len(t.trajectory),
        "generated": int(request.num_output_tokens),
        "preemptions": max(int(request.num_preemptions) - s.parks, 0),
        "parks": s.parks,
    }


class Reports:
    """Summaries of the requests freed since the last output, until they ride it."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}

    def freed(self, t: Tracked, request: Any) -> None:
        if t.report:
            self.pending[request.request_id] = summary(t, request)

    def attach(self, outputs: dict[int, Any]) -> dict[int, Any]:
        """Merge each pending summary into its request's finished output in vLLM's
        `dict[client, EngineCoreOutputs]`. Summaries of requests freed without an output
        (aborts: the client is gone) are dropped, so nothing accumulates."""
        if self.pending:
            extra = {rid: {REPORT_KEY: s} for rid, s in self.pending.items()}
            add_to_finished_outputs(outputs, extra)
            self.pending.clear()
        return outputs
