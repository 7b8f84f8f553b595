"""`trail bench online`: the probe learns from the traffic it serves, end to end over HTTP.

1. The Serve app (TRAIL, capture on) serves `--before` requests of traffic unlike the
   training data: ShareGPT follow-up turns sent alone (the predictors saw only first turns).
2. `trail train probe --from-served` and `trail train prompt --from-served` retrain the probe
   and the prompt head on what was captured; each is refused unless its held-out MAE beats the
   shipped one's.
3. While `--after` fresh requests of the same kind are being served, the new predictors are
   hot reloaded (the replicas and the ingress watch symlinks, `probe_watch` / `prompt_watch`;
   no restart); every request must succeed.
4. Online MAE and Kendall tau before vs after, from the Redis records, by predictor version.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import typer

from trail.lab.workload.prompts import apply_template
from trail.policy.replica_stats import ReplicaStats


def valid_template(template: str) -> str:
    """--template's check, before any work: the prompt must have a place in it."""
    if "{prompt}" not in template:
        raise typer.BadParameter("must contain {prompt}")
    return template


def online(
    before: int = typer.Option(500, help="requests served by the shipped predictors (captured)"),
    after: int = typer.Option(200, help="fresh requests; the new predictors load during them"),
    cap: int = typer.Option(512, help="max_tokens of every request (natural greedy lengths)"),
    concurrency: int = typer.Option(16, help="closed-loop clients (= the engine's batch)"),
    reload_after: int = typer.Option(16, help="reload once this many fresh requests finished"),
    epochs: int = typer.Option(30),
    seed: int = typer.Option(0, help="prompt order"),
    template: str = typer.Option(
        "{prompt}",
        help="one application's prompt template around each follow-up turn, e.g. "
        "'Reply in one short sentence.\\n\\n{prompt}' (a bigger shift: short answers)",
        callback=valid_template,
    ),
    out: Path = typer.Option(Path("runs/online")),
) -> None:
    """Serve shifted traffic, retrain the predictors from it, hot-reload them, measure."""
    from transformers import AutoTokenizer

    from trail.lab.bench.app_launcher import AppLauncher, app_args
    from trail.lab.workload.requests import BenchRequest
    from trail.lab.workload.sharegpt import load_followups
    from trail.models.paths import smollm2_dir

    out.mkdir(parents=True, exist_ok=True)
    captured = out / "captured"
    if (captured / "labels").exists():
        raise typer.BadParameter(f"{captured} already holds captures: pick a new --out")
    texts = load_followups(AutoTokenizer.from_pretrained(smollm2_dir()), seed, limit=before + after)
    reqs = [
        BenchRequest(f"r{i}", apply_template(template, t), cap, cap) for i, t in enumerate(texts)
    ]
    args = app_args("trail", max_num_seqs=concurrency)
    args["capture"] = {"fraction": 1.0, "every": 4, "dir": str(captured)}
    args["load_dir"] = str(out / "load")
    # symlinks, pointed at the retrained predictors below
    args["probe_watch"], args["prompt_watch"] = str(out / "live"), str(out / "live-prompt")
    settings = {"before": before, "after": after, "cap": cap, "template": template}
    report: dict[str, Any] = {"settings": settings}
    with AppLauncher() as app:
        app.deploy(args)
        t0 = time.monotonic()
        first = _serve(app.url, reqs[:before], concurrency, "before (shipped predictors)")
        report["before_s"] = round(time.monotonic() - t0, 1)
        links = {}
        for kind, link in (("probe", "live"), ("prompt", "live-prompt")):
            report[f"retrain_{kind}"] = _retrain(kind, captured, out / f"retrained-{kind}", epochs)
            if report[f"retrain_{kind}"]["shipped"]:
                links[out / link] = out / f"retrained-{kind}"
        reload = _ReloadWhenDone(links, out / "retrained-probe", out / "load", reload_after)
        t0 = time.monotonic()
        second = _serve(app.url, reqs[before:], concurrency, "after (reload during)", reload)
        report["after_s"] = round(time.monotonic() - t0, 1)
        report["reload"] = reload.summary()
        report["failed"] = [r.to_dict() for r in [*first, *second] if not r.ok]
        report["online"] = _online_by_version(len(reqs) + 64)
    finish_report(report, out, before)


def finish_report(report: dict[str, Any], out: Path, before: int) -> None:
    """The constant beside each phase (the phases serve different requests), JSON, PNG."""
    report["constant_by_phase"] = constant_by_phase(out / "captured", before)
    (out / "online.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, out / "online.png")
    _print(report)


def constant_by_phase(captured: Path, before: int) -> dict[str, float]:
    """MAE of the best constant (median remaining at g of the first phase's lengths, capped by
    max_tokens) at every captured position, per phase: how hard each phase's requests are."""
    import numpy as np

    from trail.engine.sink import read_captures
    from trail.predict.accuracy import ConstantBaseline
    from trail.serve.capture import read_labels

    rows = sorted(read_labels(captured).values(), key=lambda r: r["ts"])
    phases = {"before": rows[:before], "after": rows[before:]}
    constant = ConstantBaseline(np.array([r["length"] for r in phases["before"]]))
    caps = read_captures(captured)
    out = {}
    for name, group in phases.items():
        points = [
            (step, r["length"] - step, r["max_tokens"] - step)
            for r in group
            for step in caps.get(r["id"], {})
            if step < r["length"]
        ]
        if not points:
            out[name] = float("nan")
            continue
        g, true, room = (np.array(col) for col in zip(*points, strict=True))
        pred = np.minimum(constant.at(g), room)
        out[name] = round(float(np.abs(pred - true).mean()), 2)
    return out


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = list(report["online"]["probe_version"].items())[::-1]  # oldest first
    const = report["constant_by_phase"]
    labels = ["before (shipped)", "after (retrained)"][: len(probes)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = range(len(probes))
    ax.bar(
        [x - 0.2 for x in xs], [a["refined_mae"] for _, a in probes], 0.4, label="refined (online)"
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [const["before"], const["after"]][: len(probes)],
        0.4,
        label="best constant",
    )
    ax.set_xticks(
        list(xs), [f"{lab}\nprobe {v}" for lab, (v, _) in zip(labels, probes, strict=True)]
    )
    ax.set_ylabel("MAE of remaining length (tokens)")
    template = report["settings"].get("template", "{prompt}")
    shown = " ".join(apply_template(template, "{prompt}").split())
    suffix = "" if template == "{prompt}" else f"\nin the template “{shown[:48]}”"
    ax.set_title(f"Online learning on ShareGPT follow-up turns{suffix}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _ReloadWhenDone:
    """Counts finished requests; after `n`, points the watched symlinks at the new predictors
    and times how long until every replica reports running the new probe."""

    def __init__(self, links: dict[Path, Path], probe: Path, load_dir: Path, n: int) -> None:
        self.links, self.probe, self.load_dir, self.n = links, probe, load_dir, n
        self.done = 0
        self.thread: threading.Thread | None = None
        self.seconds: float | None = None

    def __call__(self) -> None:
        self.done += 1
        if self.done == self.n and self.thread is None:
            for link, target in self.links.items():
                link.symlink_to(target.resolve(), target_is_directory=True)
            self.thread = threading.Thread(target=self._wait_swapped, daemon=True)
            self.thread.start()

    def _wait_swapped(self) -> None:
        from trail.predict.probe import ProbeBundle

        if self.probe.resolve() not in {t.resolve() for t in self.links.values()}:
            return  # the probe was refused: nothing to wait for
        t0, version = time.monotonic(), ProbeBundle.load(self.probe).version
        while time.monotonic() - t0 < 120:
            files = self.load_dir.glob("*.replica.json")
            stats = [ReplicaStats.from_dict(json.loads(p.read_text())) for p in files]
            if stats and all(s.probe_version == version for s in stats):
                self.seconds = round(time.monotonic() - t0, 2)
                return
            time.sleep(0.2)

    def summary(self) -> dict[str, Any]:
        if self.thread is not None:
            self.thread.join(timeout=130)
        linked = [str(t) for t in self.links.values()]
        return {"after_finished": self.n, "linked": linked, "probe_swapped_s": self.seconds}


def _serve(url: str, reqs: list, concurrency: int, label: str, on_done=None) -> list:  # noqa: ANN001
    from trail.lab.bench.client import make_body
    from trail.lab.bench.loadgen import closed_loop

    def body(r: Any) -> dict[str, Any]:
        return make_body(r, "smollm2", mode="natural")

    records = asyncio.run(closed_loop(url, reqs, concurrency, body, label=label, on_done=on_done))
    failed = sum(not r.ok for r in records)
    typer.echo(f"{label}: {len(records)} requests, {failed} failed")
    return records


def _retrain(kind: str, captured: Path, out: Path, epochs: int) -> dict[str, Any]:
    """The CLI itself (a subprocess), so the run exercises exactly what a user runs; a refusal
    is an outcome, not an error."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "trail.cli", "train", kind, "--from-served", str(captured)]
    cmd += ["--out", str(out), "--epochs", str(epochs)]
    report = captured / ("retrain.json" if kind == "probe" else "retrain-prompt.json")
    report.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    typer.echo(proc.stdout + proc.stderr[-2000:])
    if not report.exists():  # it failed before judging (e.g. too few requests)
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"shipped": False, "verdict": f"failed: {tail}"}
    result = json.loads(report.read_text())
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def _online_by_version(n: int) -> dict[str, Any]:
    """online_accuracy of the Redis records: refined by the probe version that made them,
    initial by the prompt head's version."""
    from trail.serve.redis_host import resolve_redis_url
    from trail.store import StoreReader, online_accuracy

    records = StoreReader.from_url(resolve_redis_url(None)).recent(n)
    out: dict[str, Any] = {}
    for field in ("probe_version", "prompt_version"):
        groups: dict[str, list] = {}
        for record in records:
            groups.setdefault(record.get(field) or "none", []).append(record)
        out[field] = {version: online_accuracy(group) for version, group in groups.items()}
    return out


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for field, keys in (("probe_version", "refined"), ("prompt_version", "initial")):
        table = Table(title=f"online {keys} accuracy by {field} (Redis records)")
        for col in (field, "requests", f"{keys} MAE", f"{keys} τ"):
            table.add_column(col, justify="right")
        for version, acc in report["online"][field].items():
            cells = [_fmt(acc.get(f"{keys}_mae")), _fmt(acc.get(f"{keys}_tau"))]
            table.add_row(version, str(acc["n_requests"]), *cells)
        console.print(table)
    for kind in ("probe", "prompt"):
        console.print(f"retrain {kind}: {report[f'retrain_{kind}']['verdict']}")
    console.print(f"reload: {report['reload']}; failed requests: {len(report['failed'])}")


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}" if abs(x) < 1 else f"{x:.1f}"
