"""The soak's bookkeeping without servers: the ledger adds up, a failure is laid at the right
fault's door, and the slope fit flags growth and not a flat series."""

from __future__ import annotations

import time

import pytest

from ops.soak.faults import Fault
from ops.soak.outcomes import Ledger
from ops.soak.verdict import attributed, conditions, fit_slopes, slope_per_min
from trail.serve.ledger import WorkLedger


def test_every_request_closes_once_and_the_classes_add_up():
    ledger = Ledger()
    a, b, c = ledger.open("chat"), ledger.open("invalid", expected_4xx=True), ledger.open("vanish")
    assert not ledger.adds_up()  # three open: not accounted for yet
    ledger.close(a, "ok", 200)
    ledger.close(b, "client_4xx", 400)
    ledger.close(c, "vanished")
    assert ledger.adds_up() and ledger.summary()["classes"]["ok"] == 1
    with pytest.raises(AssertionError):
        ledger.close(a, "transport")  # a second ending would hide which was real


def test_a_failure_is_laid_only_at_a_kill_it_overlapped():
    ledger = Ledger()
    now = time.monotonic()
    kill = Fault("llm_replica_kill", start=now, end=now + 60, recovered_s=60)
    pause = Fault("controller_pause", start=now + 100, end=now + 110, recovered_s=10)
    during = ledger.open("chat_stream")
    during.start = now - 1
    ledger.close(during, "stream_error")
    later = ledger.open("chat")
    later.start = now + 101  # in the pause's window: nobody's request should fail there
    ledger.close(later, "server_5xx", 500)
    assert attributed(during, [kill, pause]) == "llm_replica_kill"
    assert attributed(later, [kill, pause]) is None
    checks = {c["name"]: c["ok"] for c in conditions(ledger, [kill, pause], [], {"r": [5, 5]}, 2)}
    assert checks["the LLM kill's failures are clean error events"]
    assert not checks["no 5xx/transport error outside the kills"]


def _samples(values: list[float], step_s: float = 30.0) -> list[dict]:
    return [
        {"t": i * step_s, "rss_mib": {"ingress:1": v}, "fds": {}, "ledger": {}, "redis": {}}
        for i, v in enumerate(values)
    ]


def test_the_slope_fit_flags_growth_in_the_last_half_only():
    assert slope_per_min([(0, 0), (60, 2), (120, 4)]) == pytest.approx(2.0)
    warmup_then_flat = [100, 200, 300, 400, 400, 400, 400, 400, 400, 400]
    (row,) = fit_slopes(_samples(warmup_then_flat), redis_settled_at=0)
    assert row["status"] == "ok"
    growing = [100 + 5 * i for i in range(10)]  # 10 MiB/min
    (row,) = fit_slopes(_samples(growing), redis_settled_at=0)
    assert row["status"] == "LEAK" and row["slope_per_min"] == pytest.approx(10.0)


def test_router_ledger_sizes_count_every_table():
    ledger = WorkLedger()
    ledger.reserve("a", "r1", 10.0)
    ledger.reserve("b", "r1", 10.0, confirmed=False)
    ledger.complete("a")
    assert ledger.sizes() == {"pending": 1, "routed": 0, "finished": 1}


def test_the_report_prints_judged_and_reported_slopes(capsys):
    from ops.soak.__main__ import report

    slopes = fit_slopes(_samples([1.0] * 10), redis_settled_at=0)
    slopes.append({"series": "files_kib/ray_logs", "slope_per_min": 400.0, "status": "reported"})
    summary = {
        "outcomes": {"sent": 0, "classes": {}},
        "wall_s": {},
        "faults": [],
        "slopes": slopes,
        "conditions": [{"name": "x", "ok": True, "detail": ""}],
    }
    report(summary)
    out = capsys.readouterr().out
    assert "files_kib/ray_logs: 400.0/min (limit -) reported" in out and "[PASS] x" in out
