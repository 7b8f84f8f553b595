#!/usr/bin/env bash
# The router comparison of docs/simulation.md §4 (issue 16): 2 length distributions x 2 cost
# shapes x 2 loads, at 4/16/64/256 replicas, 300 requests per replica; P2C and the slot-aware router with one
# ingress on fresh numbers, then with 4 ingress routers on 0.2 s-old snapshots. Resumable: a cell
# whose JSON exists is skipped. Then `python -m trail.lab.analyses.routers_table` prints the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/sim/routers-grid}
mkdir -p "$OUT"
for dist in lognormal:150:1 file:trail/assets/smollm2/train_lengths.txt; do
  d=$( [[ $dist == file:* ]] && echo smollm2 || echo lognormal )
  for cost in cpu gpu-like; do
    for load in 0.85 1.2; do
      for mode in "1 0" "4 0.2"; do
        set -- $mode
        tag="${d}_${cost}_${load}_i$1"
        [ -f "$OUT/$tag/routers.json" ] && continue
        routers=$([ "$1" = 1 ] && echo power-of-two,slots || echo slots)
        .venv/bin/trail sim routers --replicas 4,16,64,256 --routers "$routers" --load "$load" \
          --output "$dist" --cost "$cost" --ingress "$1" --stats-period "$2" \
          --per-engine 300 --out "$OUT/$tag.tmp" --plots "$OUT/$tag.tmp"
        mv "$OUT/$tag.tmp" "$OUT/$tag"
      done
    done
  done
done
