"""PNG of one request's predicted remaining length vs the actual remaining, over decode steps."""

from __future__ import annotations

from pathlib import Path

from trail.store.record import RequestRecord


def save_trajectory_png(record: RequestRecord, path: str | Path) -> Path:
    """Plot refined predictions, the initial prediction, and (if finished) the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    steps = [p.step for p in record.trajectory]
    ax.plot(steps, [p.expected_remaining for p in record.trajectory], ".-", label="predicted")
    if record.initial_expected is not None:
        ax.scatter([0], [record.initial_expected], marker="*", s=120, c="C2", label="initial")
    if record.true_length is not None:
        last = max([record.true_length, *steps])
        ax.plot([0, last], [record.true_length, record.true_length - last], "k--", label="actual")
    for p in record.preemptions:
        ax.axvline(p.step, color="C3", alpha=0.4, lw=1)
    ax.set_xlabel("decode step (output tokens so far)")
    ax.set_ylabel("remaining output tokens")
    ax.set_title(f"{record.request_id} ({record.policy or '?'} on {record.replica or '?'})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
