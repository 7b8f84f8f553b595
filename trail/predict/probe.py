"""The probe: Linear(hidden, 512) -> ReLU -> Linear(512, K) over layer-k hidden states.

A positional probe also reads how many tokens were generated (`position_features`): the
residual stream carries no explicit position (RoPE acts on queries and keys only), yet the
remaining length of a request still running at step g depends strongly on g — SmolLM2's answers
often run to the cap, where what is left is exactly cap - g. The engine knows g, so the probe
gets it as two extra inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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


POSITION_FEATURES = 2  # columns of position_features


def position_features(steps: np.ndarray | torch.Tensor, cap: int) -> torch.Tensor:
    """[g / cap, log(1 + g) / log(1 + cap)] per row: two inputs on a unit scale."""
    if isinstance(steps, torch.Tensor):  # already where the states are (no host round trip)
        g = steps.to(torch.float32).reshape(-1, 1)
    else:
        g = torch.as_tensor(np.asarray(steps, dtype=np.float32)).reshape(-1, 1)
    return torch.cat([g / cap, torch.log1p(g) / float(np.log1p(cap))], dim=1)


@dataclass
class ProbeBundle:
    """A trained probe with what it was trained on (layer, bins, hidden size) and its card."""

    probe: ProbeMLP
    layer: int
    bins: LengthBins
    card: dict[str, Any] = field(default_factory=dict)
    positional: bool = False
    cap: int = 512
    version: str = "unsaved"  # content hash of probe.pt: the label in records and metrics

    @property
    def model_hidden(self) -> int:
        """The served model's hidden size this probe reads (its input less position features)."""
        return self.probe.net[0].in_features - (POSITION_FEATURES if self.positional else 0)

    @property
    def model_name(self) -> str | None:
        """The served model this probe was trained for, as its card names it."""
        model = self.card.get("model")
        return model.get("name") if isinstance(model, dict) else model

    @property
    def model_fingerprint(self) -> str | None:
        """`model_fingerprint` of that model's config; None for probes trained before it."""
        model = self.card.get("model")
        return model.get("fingerprint") if isinstance(model, dict) else None

    def inputs(self, vectors: torch.Tensor, steps: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(vectors, dtype=torch.float32)
        if not self.positional:
            return x
        return torch.cat([x, position_features(steps, self.cap).to(x.device)], dim=1)

    def probs(self, vectors: torch.Tensor, steps: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Bin probabilities of the remaining length for hidden states at steps g."""
        return self.probe.probs(self.inputs(vectors, steps))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.probe.state_dict(), directory / "probe.pt")
        self.version = weights_version(directory / "probe.pt")
        meta = {
            "layer": self.layer,
            "bins": self.bins.to_list(),
            "hidden": self.probe.net[0].in_features,
            "width": self.probe.net[0].out_features,
            "positional": self.positional,
            "cap": self.cap,
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
        return cls(
            probe=probe,
            layer=int(meta["layer"]),
            bins=bins,
            card=meta.get("card", {}),
            positional=bool(meta.get("positional", False)),
            cap=int(meta.get("cap", 512)),
            version=weights_version(d / "probe.pt"),
        )


FINGERPRINT_FIELDS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)


def model_fingerprint(config: Any) -> str:
    """Which model a probe reads: a hash of the architecture and sizes in its HF config (a
    config.json dict, or the config object an engine holds), so a dtype, a path or TRAIL's own
    config attributes do not change it. Not of the weights: at engine load they are sharded,
    maybe quantised or cast, and a checksum would mean reading them; a fine-tune of the same
    base model therefore shares its base's fingerprint."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text = raw.get("text_config") or raw  # multimodal configs nest the language model's
    fields: dict[str, Any] = {key: text.get(key) for key in FINGERPRINT_FIELDS}
    if fields["num_key_value_heads"] is None:  # older configs: one KV head per query head
        fields["num_key_value_heads"] = fields["num_attention_heads"]
    fields["architectures"] = sorted(raw.get("architectures") or [])
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_of(model: str | Path) -> str | None:
    """`model_fingerprint` of a model folder's config.json (or a hub name's, if already in the
    local HF cache); None where there is none. Read as JSON: importing transformers' config
    classes would cost the trainer ~250 MB."""
    path = Path(model) / "config.json"
    if not path.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(str(model), "config.json")
        except ValueError:  # not a valid repo id
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    return model_fingerprint(json.loads(path.read_text()))


def weights_version(path: Path) -> str:
    """Short content hash of a weights file: two probes with the same bytes are one version."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]
