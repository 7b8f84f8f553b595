"""The soak of issue 32 at 5 minutes (`make soak` runs it for 60): the same harness, faults and
Done-when conditions (ops/soak), sampled every 15 s so the slope fits have points.

It owns its Ray, app, Redis and exporter (not tests/serve's shared app: it needs 2 ingress
replicas and kills processes), so it must not run beside another in-process Ray.
"""

from __future__ import annotations

import pytest

from ops.soak.__main__ import report
from ops.soak.load import LoadConfig
from ops.soak.run import SoakConfig, soak

pytestmark = [pytest.mark.serve, pytest.mark.slow]


@pytest.mark.timeout(900)  # 7-8 min on a busy 2-core machine (2-3 min of it start-up)
def test_soak_five_minutes_every_request_accounted_faults_recovered_no_leak(tiny_path, tmp_path):  # noqa: ARG001
    cfg = SoakConfig(
        minutes=5, out=tmp_path, sample_s=15, load=LoadConfig(rate=3.0), store_ttl_s=60
    )
    summary = soak(cfg)
    report(summary)
    failed = [c for c in summary["conditions"] if not c["ok"]]
    assert not failed, failed
