"""Metrics fixtures: a private multiprocess directory (set before trail.metrics is imported)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Keep this test process's metric files out of the node's shared /tmp/trail-metrics.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _dir = tempfile.mkdtemp(prefix="trail-test-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _dir
    atexit.register(shutil.rmtree, _dir, True)
