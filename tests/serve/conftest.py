"""One in-process Ray (loopback only) + the Serve app with two tiny-model replicas, shared by
every module of tests/serve (package scope: one start-up, about a minute on 2 cores).

The app writes predictions to a test-owned real Redis (so tests can stop and restart it on the
same port) and its metrics to a temp PROMETHEUS_MULTIPROC_DIR (so a test Prometheus sees only
this app). Tests that change state put it back (Redis up, engines idle).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.known_probe import write_known_probe
from tests.support.serve import ServeStack, running_app


@pytest.fixture(scope="package")
def serve_app(tiny_path) -> Iterator[ServeStack]:  # noqa: ARG001 - the model must exist
    """A running app; everything is shut down afterwards."""

    def oracle_with_probe(args: dict, root: Path) -> None:
        # the known probe runs beside the oracle ordering, so records and probe metrics fill in
        probe = write_known_probe(root / "probe")
        args["engine"]["trail"] = {
            "policy": "trail-oracle",
            "probe_path": str(probe),
            "capture": True,
        }

    with running_app(oracle_with_probe) as stack:
        yield stack
