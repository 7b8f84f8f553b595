"""Summary of one HTTP run from its per-request records (plain dicts, as in the JSONL).

Latency/TTFT percentiles are over completed requests; throughput counts completed output tokens
over the run's span (first send to last completion); goodput counts completed requests that meet
every SLO bound that is set, per second of the same span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trail.lab.stats.summary import summarize


@dataclass(frozen=True)
class SLO:
    """Per-request bounds; None leaves a bound out. Defaults are for SmolLM2 on 2 CPU cores."""

    ttft_s: float | None = None
    latency_s: float | None = None
    tpot_s: float | None = None

    def met(self, r: dict) -> bool:
        if not r.get("ok"):
            return False
        for bound, value in (
            (self.ttft_s, r.get("ttft_s")),
            (self.latency_s, r.get("latency_s")),
            (self.tpot_s, r.get("tpot_s")),
        ):
            if bound is not None and value is not None and value > bound:
                return False
        return True

    def label(self) -> str:
        parts = [
            f"{name}<={v:g}s"
            for name, v in (
                ("TTFT", self.ttft_s),
                ("latency", self.latency_s),
                ("TPOT", self.tpot_s),
            )
            if v is not None
        ]
        return " & ".join(parts) or "none"


def span_s(records: Sequence[dict]) -> float:
    """First send to last completion (seconds), over completed requests."""
    done = [r for r in records if r.get("ok")]
    if not done:
        return 0.0
    return max(r["sent_s"] + r["latency_s"] for r in done) - min(r["sent_s"] for r in records)


def summarize_records(records: Sequence[dict], slo: SLO | None = None) -> dict:
    done = [r for r in records if r.get("ok")]
    span = span_s(records)
    tokens = sum(int(r["out_tokens"]) for r in done)
    out = {
        "requests": len(records),
        "completed": len(done),
        "errors": len(records) - len(done),
        **summarize([r["latency_s"] for r in done], [r["ttft_s"] for r in done], tokens, span),
    }
    out.pop("n", None)
    tpot = np.asarray([r["tpot_s"] for r in done if r.get("tpot_s") is not None], dtype=float)
    ttft = np.asarray([r["ttft_s"] for r in done], dtype=float)
    out.update(
        {
            "p50_ttft_s": float(np.percentile(ttft, 50)) if ttft.size else None,
            "mean_tpot_s": float(tpot.mean()) if tpot.size else None,
            "p99_tpot_s": float(np.percentile(tpot, 99)) if tpot.size else None,
            "output_tokens": tokens,
            "span_s": span,
            "throughput_req_s": len(done) / span if span > 0 else 0.0,
            "wrong_length": sum(1 for r in done if r["out_tokens"] != r["expected_tokens"]),
        }
    )
    if slo is not None:
        good = sum(1 for r in records if slo.met(r))
        out["slo"] = slo.label()
        out["goodput_req_s"] = good / span if span > 0 else 0.0
        out["slo_attainment"] = good / len(records) if records else 0.0
    return out


def steady_tok_s(records: Sequence[dict], k: int) -> float:
    """Output tokens/s while the server is full: from the moment k requests are decoding to the
    moment fewer than k remain (a closed-loop run's start-up and drain tail left out). Each
    request's tokens are spread evenly between its first token and its end."""
    done = [r for r in records if r.get("ok")]
    if len(done) <= k or k < 1:
        return summarize_records(records).get("throughput_tok_s", 0.0)
    first = sorted(r["sent_s"] + r["ttft_s"] for r in done)
    end = sorted(r["sent_s"] + r["latency_s"] for r in done)
    a, b = first[k - 1], end[len(done) - k]
    if b <= a:
        return summarize_records(records).get("throughput_tok_s", 0.0)
    tokens = 0.0
    for r in done:
        t0, t1, n = r["sent_s"] + r["ttft_s"], r["sent_s"] + r["latency_s"], r["out_tokens"]
        if t1 <= t0:
            tokens += n if a <= t0 <= b else 0
            continue
        overlap = max(0.0, min(b, t1) - max(a, t0))
        tokens += n * overlap / (t1 - t0)
    return tokens / (b - a)


def print_summary(console, summary: dict, title: str) -> None:  # noqa: ANN001 - rich Console
    """One run's summary as a two-column table."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        t.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    console.print(t)
