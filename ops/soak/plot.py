"""One PNG of a soak: RSS and fds per process, Redis, ledger tables, KV blocks, the router's view
vs the truth, with every fault window shaded (so a step in a curve can be read against it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _lines(ax, samples: list[dict], key: str, title: str, ylabel: str) -> None:  # noqa: ANN001
    names = sorted({n for s in samples for n in s[key]})
    for name in names:
        pts = [(s["t"] / 60, s[key][name]) for s in samples if name in s[key]]
        ax.plot(*zip(*pts, strict=True), marker=".", lw=1, label=name)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    if 0 < len(names) <= 14:
        ax.legend(fontsize=5, ncol=2)


def _redis(ax, samples: list[dict]) -> None:  # noqa: ANN001
    pts = [(s["t"] / 60, s["redis"]) for s in samples if s["redis"]]
    if not pts:
        return
    t = [p[0] for p in pts]
    ax.plot(t, [p[1]["memory_kib"] / 1024 for p in pts], "b.-", label="used_memory MiB")
    twin = ax.twinx()
    twin.plot(t, [p[1]["keys"] for p in pts], "g.-", label="keys")
    ax.set_title("Redis: memory (blue, MiB), keys (green)", fontsize=9)


def _kv(ax, samples: list[dict]) -> None:  # noqa: ANN001
    t = [s["t"] / 60 for s in samples]
    free = [sum(v[0] or 0 for v in s["kv"].values()) for s in samples]
    total = [sum(v[1] or 0 for v in s["kv"].values()) for s in samples]
    ax.plot(t, free, ".-", label="free")
    ax.plot(t, total, "--", label="total")
    ax.set_title("KV blocks, live replicas", fontsize=9)
    ax.legend(fontsize=6)


def _view(ax, samples: list[dict]) -> None:  # noqa: ANN001
    t = [s["t"] / 60 for s in samples]
    view = [sum(s["router_view"].values()) for s in samples]
    truth = [sum(v or 0 for v in s["truth"].values()) for s in samples]
    ax.plot(t, view, ".-", label="router's view")
    ax.plot(t, truth, ".-", label="replicas' own")
    ax.set_title("predicted work, all replicas (tokens)", fontsize=9)
    ax.legend(fontsize=6)


def plot(samples: list[dict], faults: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(3, 3, figsize=(16, 12))
    ax = axes.ravel()
    _lines(ax[0], samples, "rss_mib", "RSS per process (MiB)", "MiB")
    _lines(ax[1], samples, "fds", "open fds per process", "fds")
    _redis(ax[2], samples)
    _lines(ax[3], samples, "ledger", "router ledger entries (table:pid)", "entries")
    _kv(ax[4], samples)
    _view(ax[5], samples)
    _lines(ax[6], samples, "files_kib", "bytes on disk (KiB)", "KiB")
    ax[7].plot([s["t"] / 60 for s in samples], [s["metric_files"] for s in samples], ".-")
    ax[7].set_title("metric files (*.db)", fontsize=9)
    ax[8].axis("off")
    ax[8].text(
        0, 1, "\n".join(f"{f['name']}: {f['recovered_s']} s" for f in faults), va="top", fontsize=8
    )
    for a in ax[:8]:
        a.set_xlabel("minutes into the load", fontsize=8)
        for f in faults:
            if f.get("at_s") is not None and f.get("until_s") is not None:
                a.axvspan(f["at_s"] / 60, f["until_s"] / 60, color="red", alpha=0.12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
