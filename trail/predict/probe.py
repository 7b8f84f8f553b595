"""The probe: Linear(hidden, 512) -> ReLU -> Linear(512, K) over layer-k hidden states."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trail.predict.bins import LengthBins


class ProbeMLP(nn.Module):
    def __init__(self, hidden: int, k: int, width: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.inference_mode()
    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x.to(self.net[0].weight.dtype)), dim=-1)


@dataclass
class ProbeBundle:
    """A trained probe with what it was trained on (layer, bins, hidden size) and its card."""

    probe: ProbeMLP
    layer: int
    bins: LengthBins
    card: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.probe.state_dict(), directory / "probe.pt")
        meta = {
            "layer": self.layer,
            "bins": self.bins.to_list(),
            "hidden": self.probe.net[0].in_features,
            "width": self.probe.net[0].out_features,
            "card": self.card,
        }
        (directory / "probe.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path | str) -> ProbeBundle:
        d = Path(directory)
        meta_path = d / "probe.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"no probe at {d} (expected probe.json + probe.pt); train one with "
                "`trail train probe --layer K`"
            )
        meta = json.loads(meta_path.read_text())
        bins = LengthBins.from_edges(meta["bins"])
        probe = ProbeMLP(meta["hidden"], bins.k, meta.get("width", 512))
        probe.load_state_dict(torch.load(d / "probe.pt", map_location="cpu", weights_only=True))
        probe.eval()
        return cls(probe=probe, layer=int(meta["layer"]), bins=bins, card=meta.get("card", {}))
