"""`python -m ops.soak --minutes 60 --out runs/soak/NAME`: the soak of issue 32.

The Serve app (2 LLM replicas of the tiny model, 2 ingress replicas, the TRAIL router), a real
Redis and the metrics exporter under an open-loop mix for `--minutes`, with faults on a
schedule; writes summary.json, samples.json and soak.png to --out, prints each Done-when
condition, and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ops.soak.faults import ORDER
from ops.soak.load import LoadConfig
from ops.soak.run import SoakConfig, soak


def parse(argv: list[str] | None = None) -> SoakConfig:
    ap = argparse.ArgumentParser(prog="python -m ops.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("runs/soak/latest"))
    ap.add_argument("--sample-s", type=float, default=60.0, help="sampling period")
    ap.add_argument(
        "--rate", type=float, default=3.0, help="req/s (~0.45 x the tiny app's saturation)"
    )
    ap.add_argument("--burst-every-s", type=float, default=60.0)
    ap.add_argument("--burst-size", type=int, default=36)
    ap.add_argument("--faults", default=",".join(ORDER), help=f"in order, of {','.join(ORDER)}")
    ap.add_argument("--store-ttl-s", type=int, default=300)
    ap.add_argument("--min-requests", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    faults = [f for f in a.faults.split(",") if f]
    unknown = set(faults) - set(ORDER)
    if unknown:
        ap.error(f"unknown faults: {sorted(unknown)}")
    load = LoadConfig(
        rate=a.rate, burst_every_s=a.burst_every_s, burst_size=a.burst_size, seed=a.seed
    )
    return SoakConfig(a.minutes, a.out, a.sample_s, faults, load, a.store_ttl_s, a.min_requests)


def report(summary: dict) -> None:
    o = summary["outcomes"]
    print(f"sent {o['sent']}: {o['classes']}  wall {summary['wall_s']}")
    for f in summary["faults"]:
        print(
            f"  fault {f['name']}: recovered {f['recovered_s']} s {f['error'] or ''} {f['facts']}"
        )
    for s in summary["slopes"]:
        if "slope_per_min" in s:
            limit = s.get("limit_per_min", "-")  # bytes on disk are reported, not judged
            print(f"  slope {s['series']}: {s['slope_per_min']}/min (limit {limit}) {s['status']}")
    for c in summary["conditions"]:
        print(f"[{'PASS' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}")


def main(argv: list[str] | None = None) -> None:
    summary = soak(parse(argv))
    report(summary)
    sys.exit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
