"""`trail inspect ID` (one request's trajectory) and `trail inspect --recent N` (online accuracy)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from trail.models.paths import SMOLLM2_ASSETS
from trail.store.reader import StoreReader
from trail.store.record import RequestRecord, online_accuracy

# A group with only a callback: `trail inspect ID --png X` must accept options after the ID,
# which click groups refuse unless interspersed args are allowed.
app = typer.Typer(
    help="Inspect prediction records held in Redis.",
    context_settings={"allow_interspersed_args": True},
    subcommand_metavar="",
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _summary_table(r: RequestRecord) -> Table:
    table = Table(title=f"request {r.request_id}", show_header=False)
    ttft = r.first_token_ts - r.arrival_ts if r.first_token_ts and r.arrival_ts else None
    latency = r.finish_ts - r.arrival_ts if r.finish_ts and r.arrival_ts else None
    rows = {
        "replica / policy": f"{r.replica or '-'} / {r.policy or '-'}",
        "prompt tokens": _fmt(r.prompt_tokens),
        "prompt sha256": (r.prompt_hash or "-")[:16],
        "initial expected": _fmt(r.initial_expected),
        "true length": _fmt(r.true_length),
        "finish reason": _fmt(r.finish_reason),
        "ttft / latency (s)": f"{_fmt(ttft, 3)} / {_fmt(latency, 3)}",
        "preemptions": ", ".join(f"{p.reason}@{p.step}" for p in r.preemptions) or "0",
        "ttl (s)": _fmt(r.ttl_s),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def _trajectory_table(r: RequestRecord, max_rows: int) -> Table:
    points = r.trajectory
    stride = max(1, -(-len(points) // max_rows))
    shown = points[::stride]
    table = Table(title=f"trajectory: {len(points)} points (every {stride})")
    for column in ("step", "predicted remaining", "actual remaining", "|error|"):
        table.add_column(column, justify="right")
    for p in shown:
        actual = r.true_length - p.step if r.true_length is not None else None
        error = abs(p.expected_remaining - actual) if actual is not None else None
        table.add_row(str(p.step), _fmt(p.expected_remaining), _fmt(actual), _fmt(error))
    return table


TRAIN_LENGTHS = SMOLLM2_ASSETS / "train_lengths.txt"
COLUMNS = {  # header -> online_accuracy key
    "initial MAE": "initial_mae",
    "constant MAE": "constant_initial_mae",
    "initial τ": "initial_tau",
    "initial pairwise": "initial_pairwise",
    "refined MAE": "refined_mae",
    "constant (by step)": "constant_refined_mae",
    "refined τ": "refined_tau",
    "refined/req": "refined_mae_per_request",
}


def _accuracy_table(
    records: list[dict[str, Any]], train_lengths: list[float] | None, by: str = "policy"
) -> Table:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record.get(by) or "?"].append(record)
    groups["all"] = records
    table = Table(title=f"online accuracy over the {len(records)} most recent finished requests")
    for column in (by, "requests", "points", *COLUMNS):
        table.add_column(column, justify="right")
    for policy, group in groups.items():
        acc = online_accuracy(group, train_lengths)
        digits = {k: 3 if "tau" in k or "pairwise" in k else 1 for k in COLUMNS.values()}
        cells = [_fmt(acc.get(k), digits[k]) for k in COLUMNS.values()]
        table.add_row(policy, str(acc["n_requests"]), str(acc["n_points"]), *cells)
    return table


@app.callback(invoke_without_command=True)
def inspect(
    request_id: Annotated[
        str | None, typer.Argument(help="Request id (with or without vLLM's suffix).")
    ] = None,
    recent: Annotated[
        int | None, typer.Option("--recent", min=1, help="Summarise the N latest requests.")
    ] = None,
    png: Annotated[
        Path | None, typer.Option("--png", help="Save predicted vs actual remaining as PNG.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", envvar="REDIS_URL", help="Redis URL.")
    ] = None,
    key_prefix: Annotated[
        str, typer.Option(help="Key prefix the store wrote with.")
    ] = "trail:req:",
    max_rows: Annotated[int, typer.Option(min=1, help="Trajectory rows printed (spaced).")] = 40,
    by: Annotated[
        str, typer.Option(help="--recent: group by this record field (policy, probe_version).")
    ] = "policy",
    train_lengths: Annotated[
        Path | None,
        typer.Option(help="Training output lengths (one per line) for the constant baseline."),
    ] = TRAIN_LENGTHS,
) -> None:
    """Print a request's trajectory (optionally a PNG), or online accuracy of recent requests."""
    if not redis_url:
        raise typer.BadParameter("give --redis-url or set REDIS_URL", param_hint="--redis-url")
    if (request_id is None) == (recent is None):
        raise typer.BadParameter("give either a request ID or --recent N")
    reader = StoreReader.from_url(redis_url, key_prefix=key_prefix)
    console = Console()  # here, not at import: it reads the terminal's width (COLUMNS)
    if recent is not None:
        lengths = None
        if train_lengths is not None and train_lengths.exists():
            lengths = [float(x) for x in np.loadtxt(train_lengths, ndmin=1)]
        console.print(_accuracy_table(reader.recent(recent), lengths, by))
        return
    assert request_id is not None
    record = reader.get_record(request_id)
    if record is None:
        console.print(f"[red]no record for {request_id!r} in {redis_url}[/red]")
        raise typer.Exit(1)
    console.print(_summary_table(record))
    console.print(_trajectory_table(record, max_rows))
    if png is not None:
        from trail.store.plot import save_trajectory_png

        console.print(f"saved {save_trajectory_png(record, png)}")
