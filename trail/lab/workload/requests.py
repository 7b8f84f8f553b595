"""The fixed, seeded request set of an HTTP benchmark: prompts with their output lengths.

Sources: the shipped SmolLM2 test set (ShareGPT first-turn prompts, natural greedy lengths,
held out from predictor training; in git, so a fresh checkout can run), a `trail profile`
folder, or a JSONL trace of {prompt, out_tokens}. Lengths are clipped at `max_out` (what a
max_tokens cap does) so a CPU run stays short.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trail.lab.workload.prompts import from_profile, load_jsonl
from trail.models.paths import SMOLLM2_ASSETS

DEFAULT_SET = SMOLLM2_ASSETS / "testset" / "requests.json"


@dataclass(frozen=True)
class BenchRequest:
    id: str
    prompt: str
    out_tokens: int  # tokens the request generates (natural length, clipped at max_out)
    natural_tokens: int  # the natural greedy length before clipping

    def to_dict(self) -> dict:
        return asdict(self)


def load_source(source: Path | None = None) -> list[tuple[str, int]]:
    """(prompt, natural length) pairs from the test set JSON, a profile folder or a JSONL."""
    path = Path(source) if source else DEFAULT_SET
    if path.is_dir():
        return [(w.prompt, w.out_tokens) for w in from_profile(path, ("test", "val"))]
    if path.suffix == ".jsonl":
        return [(w.prompt, w.out_tokens) for w in load_jsonl(path)]
    rows = json.loads(path.read_text())
    rows = rows["requests"] if isinstance(rows, dict) else rows
    return [(str(r["text"]), int(r["length"])) for r in rows]


def build(
    pairs: list[tuple[str, int]], n: int, seed: int, max_out: int | None = None
) -> list[BenchRequest]:
    """n requests in a seeded order; the set repeats (reshuffled) when n exceeds it."""
    if not pairs:
        raise ValueError("empty request source")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < n:
        order.extend(int(i) for i in rng.permutation(len(pairs)))
    out = []
    for k, i in enumerate(order[:n]):
        prompt, natural = pairs[i]
        tokens = min(natural, max_out) if max_out else natural
        out.append(BenchRequest(f"r{k:04d}", prompt, max(int(tokens), 1), int(natural)))
    return out


def save(requests: list[BenchRequest], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in requests))
