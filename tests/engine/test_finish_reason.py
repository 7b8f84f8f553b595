"""Finish reasons recorded by the scheduler (records, metrics): vLLM's STOP is the int 0."""

from __future__ import annotations

import pytest
from vllm.v1.engine import FinishReason
from vllm.v1.request import RequestStatus

from trail.engine.scheduler import finish_reason_name


@pytest.mark.parametrize(
    "status, name",
    [
        (RequestStatus.FINISHED_STOPPED, "stop"),
        (RequestStatus.FINISHED_LENGTH_CAPPED, "length"),
        (RequestStatus.FINISHED_ABORTED, "abort"),
        (RequestStatus.RUNNING, "abort"),  # freed while unfinished: an abort
    ],
)
def test_every_vllm_status_gets_its_name(status, name):
    assert finish_reason_name(RequestStatus.get_finished_reason(status)) == name


def test_stop_is_not_mistaken_for_missing():
    assert FinishReason.STOP == 0  # the trap: `reason or "abort"` turned every stop into abort
    assert finish_reason_name(FinishReason.STOP) == "stop"
