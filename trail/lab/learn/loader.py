"""Training rows read from a profile's memory-mapped shards, one layer at a time.

A profile of 50k requests at hidden 4096 holds hundreds of GB of rows: they never sit in
memory together. A split's rows at one layer are cut into blocks (rows of one shard, read in
one go from that shard's per-layer file); an epoch visits the blocks in random order, a few at
a time (`mix` blocks from different shards, shuffled together), so memory is bounded by
`buffer_bytes` whatever the number of shards. Small profiles fit in one group: then an epoch is
one shuffle over all rows, as in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from trail.lab.learn.shards import DEFAULT_BUFFER_MB, ProfileData, RowBlock
from trail.lab.learn.train import Standardiser
from trail.predict.probe import POSITION_FEATURES, position_features

MIX = 4  # blocks (of different shards, mostly) shuffled together


class ShardedRows:
    """One split's rows at one layer (the probe's input form: position features appended
    with `cap`), read block by block from the shards."""

    def __init__(  # noqa: PLR0913
        self,
        data: ProfileData,
        layer: int,
        split: str,
        cap: int | None = None,
        buffer_mb: float = DEFAULT_BUFFER_MB,
        mix: int = MIX,
    ):
        rows = data.split_rows(split)  # sorted: the blocks cover them in this order
        self.labels = data.labels[rows]
        self.steps = data.steps[rows]
        self.cap = cap
        self.hidden = data.vectors.hidden
        self.width = self.hidden + (POSITION_FEATURES if cap is not None else 0)
        self.mix = mix
        block_rows = max(1, int(buffer_mb * 2**20) // (4 * self.width * mix))
        self.blocks = data.layer_blocks(layer, rows, block_rows)
        self.starts = np.cumsum([0] + [len(b) for b in self.blocks])

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, k: int) -> np.ndarray:
        """Block k as float32 [m, width]."""
        block: RowBlock = self.blocks[k]
        out = np.empty((len(block), self.width), dtype=np.float32)
        out[:, : self.hidden] = block.read()
        if self.cap is not None:
            steps = self.steps[self.starts[k] : self.starts[k + 1]]
            out[:, self.hidden :] = position_features(steps, self.cap).numpy()
        return out

    def positions(self, k: int) -> np.ndarray:
        return np.arange(self.starts[k], self.starts[k + 1])

    def chunks(self, device: torch.device) -> Iterator[torch.Tensor]:
        for k in range(len(self.blocks)):
            yield torch.from_numpy(self.read(k)).to(device)

    def standardiser(self) -> Standardiser:
        """Per-feature mean and std over every row, streamed (Chan's pairwise merge, float64)."""
        n, mean, m2 = 0, np.zeros(self.width), np.zeros(self.width)
        for k in range(len(self.blocks)):
            x = self.read(k).astype(np.float64)
            m, bm = len(x), x.mean(0)
            delta = bm - mean
            mean = mean + delta * m / (n + m)
            x -= bm
            m2 = m2 + np.square(x, out=x).sum(0) + delta**2 * n * m / (n + m)
            n += m
            del x  # before the next block is read
        return Standardiser.from_moments(n, mean, m2)

    def batches(
        self, batch: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Blocks in random order, `mix` at a time, rows shuffled within each group; the rows
        left over from a group (fewer than `batch`) open the next, so batches are full."""
        order = torch.randperm(len(self.blocks), generator=gen).tolist()
        carry_x = torch.zeros(0, self.width, device=device)
        carry_p = torch.zeros(0, dtype=torch.long, device=device)
        for g in range(0, len(order), self.mix):
            group = order[g : g + self.mix]
            x, pos = self._group(group, carry_x, carry_p, device)
            perm = torch.randperm(len(x), generator=gen).to(device)
            last = g + self.mix >= len(order)
            full = len(x) if last else len(x) - len(x) % batch
            for i in range(0, full, batch):
                idx = perm[i : min(i + batch, full)]
                yield x[idx], pos[idx]
            carry_x, carry_p = x[perm[full:]], pos[perm[full:]]
            del x, pos, perm  # before the next group is read: one group in memory at a time

    def _group(
        self, group: list[int], carry_x: torch.Tensor, carry_p: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The carried rows and the group's blocks in one tensor, filled block by block (peak:
        the group plus one block)."""
        sizes = [len(carry_x)] + [len(self.blocks[k]) for k in group]
        x = torch.empty(sum(sizes), self.width, device=device)
        x[: sizes[0]] = carry_x
        pos = [carry_p] + [torch.from_numpy(self.positions(k)).to(device) for k in group]
        at = sizes[0]
        for k, size in zip(group, sizes[1:], strict=True):
            x[at : at + size] = torch.from_numpy(self.read(k)).to(device)
            at += size
        return x, torch.cat(pos)
