"""Initial length prediction in the frontend (the ingress), before routing.

It runs before the request is routed because the router needs the predicted work, and it runs
in a worker thread because the MiniLM encoder would otherwise block the event loop. When no
prompt predictor is shipped, requests carry no distribution and the engine uses its default.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class InitialPrediction:
    expected: float
    dist: list[float] | None = None


class InitialPredictor:
    def __init__(self, path: str | None, default_prediction: float) -> None:
        self.default_prediction = default_prediction
        self.predictor = self._load(path)

    @staticmethod
    def _load(path: str | None) -> Any | None:
        try:
            from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptPredictor
        except ImportError as err:  # the module is optional at this layer
            logger.warning("prompt predictor unavailable (%s); using the default", err)
            return None
        directory = Path(path) if path else DEFAULT_PROMPT_DIR
        if not (directory / "prompt.json").exists():
            if path:
                raise FileNotFoundError(f"prompt_predictor_path {path} has no prompt.json")
            logger.info("no prompt predictor at %s; requests use the default", directory)
            return None
        return PromptPredictor.load(directory)

    @property
    def available(self) -> bool:
        return self.predictor is not None

    async def predict(self, text: str, true_len: int | None, cap: int) -> InitialPrediction:
        """Expected output length (≤ cap), with the bin distribution when a predictor exists."""
        if true_len is not None:
            return InitialPrediction(expected=float(min(true_len, cap)))
        if self.predictor is None:
            return InitialPrediction(expected=min(self.default_prediction, float(cap)))
        dist = await asyncio.to_thread(self.predictor.predict_dist, [text])
        row = [float(x) for x in dist[0]]
        expected = float(self.predictor.bins.expected(dist[0]))
        return InitialPrediction(expected=min(expected, float(cap)), dist=row)
