"""The worker's capture sink without an engine: lossless on the step, or a bounded background
writer whose drops are counted and whose disk use stays under the quota (issue 19)."""

from __future__ import annotations

import time

import torch

from trail.engine.sink import CaptureSink, capture_stats, read_captures

H = 8


def rows(cid: str, g: int, n: int = 1) -> list[tuple[str, int, torch.Tensor]]:
    return [(cid, g + i, torch.full((1, H), float(g + i))) for i in range(n)]


class SlowFile:
    """A disk that takes `delay_s` per write (the writer thread must absorb it)."""

    def __init__(self, inner, delay_s: float) -> None:  # noqa: ANN001
        self.inner, self.delay_s = inner, delay_s

    def write(self, data):  # noqa: ANN001, ANN201
        time.sleep(self.delay_s)
        return self.inner.write(data)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)


def test_write_on_the_step_is_lossless_and_readable(tmp_path):
    sink = CaptureSink(tmp_path, layers=[3], hidden=H)
    sink.write(rows("a", 0, 3))
    sink.write(rows("b", 0, 2))
    got = read_captures(tmp_path)  # readable before close: flushed on the step
    assert {k: sorted(v) for k, v in got.items()} == {"a": [0, 1, 2], "b": [0, 1]}
    assert float(got["a"][2][0, 0]) == 2.0
    sink.close()
    assert capture_stats(tmp_path)["rows_written"] == 5


def test_a_slow_disk_never_blocks_the_step_and_every_drop_is_counted(tmp_path):
    counted: dict[str, int] = {}
    sink = CaptureSink(
        tmp_path,
        layers=[3],
        hidden=H,
        queue_rows=2,
        on_count=lambda outcome, n: counted.__setitem__(outcome, counted.get(outcome, 0) + n),
    )
    sink._bin = SlowFile(sink._bin, delay_s=0.05)
    slowest = 0.0
    for g in range(40):
        t0 = time.perf_counter()
        sink.write(rows("a", g))
        slowest = max(slowest, time.perf_counter() - t0)
    sink.close()
    stats = capture_stats(tmp_path)
    assert slowest < 0.02, f"a step waited {slowest * 1000:.0f} ms on the disk"
    assert stats["dropped_queue"] > 0
    assert stats["rows_written"] + stats["dropped_queue"] == 40
    assert len(read_captures(tmp_path)["a"]) == stats["rows_written"]
    assert counted == {"written": stats["rows_written"], "dropped_queue": stats["dropped_queue"]}


def test_the_quota_bounds_the_disk_and_counts_what_it_refused(tmp_path):
    row_bytes = H * 2  # one layer of float16
    sink = CaptureSink(tmp_path, layers=[3], hidden=H, quota_bytes=3 * row_bytes, queue_rows=64)
    for g in range(10):
        sink.write(rows("a", g))
    sink.close()
    stats = capture_stats(tmp_path)
    assert (stats["rows_written"], stats["dropped_quota"]) == (3, 7)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.bin")) <= 3 * row_bytes
    assert sorted(read_captures(tmp_path)["a"]) == [0, 1, 2]


def test_a_failing_disk_drops_and_counts_and_close_still_returns(tmp_path):
    class BrokenFile(SlowFile):
        def write(self, data):  # noqa: ANN001, ANN201
            raise OSError(28, "No space left on device")

    sink = CaptureSink(tmp_path, layers=[3], hidden=H, queue_rows=8)
    sink._bin = BrokenFile(sink._bin, 0.0)
    for g in range(5):
        sink.write(rows("a", g))
    sink.close()  # must not hang on a writer that hit errors
    assert sink.stats["dropped_error"] == 5 and sink.stats["rows_written"] == 0
