"""Initial length prediction in the frontend (the ingress), before routing.

It runs before the request is routed because the router needs the predicted work. It runs on
one worker thread, in batches of what arrived while the previous batch ran (`Batcher`): the
MiniLM encoder would block the event loop, its tokenizer is not safe for concurrent calls, and
a batch of 16 costs ~5 ms per request against ~22 ms one by one. When no prompt predictor is
shipped, requests carry no distribution and the engine uses its default.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class InitialPrediction:
    expected: float
    dist: list[float] | None = None
    embedding: Any = None  # the head's input (np.ndarray), written only for captured requests
    version: str | None = None  # of the prompt head that predicted


class Batcher:
    """Calls `fn(list of items) -> list of results` on one thread, batching concurrent callers."""

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 16) -> None:
        self.fn, self.max_batch = fn, max_batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-predictor")
        self.queue: list[tuple[Any, asyncio.Future]] = []
        self.draining = False

    async def __call__(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((item, future))
        if not self.draining:
            self.draining = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                try:
                    out = await loop.run_in_executor(self.pool, self.fn, [x for x, _ in batch])
                except Exception as err:  # every caller of the batch hears of it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(err)
                    continue
                for (_, fut), row in zip(batch, out, strict=True):
                    if not fut.done():  # a caller may have gone away
                        fut.set_result(row)
        finally:
            self.draining = False


class InitialPredictor:
    def __init__(self, path: str | None, default_prediction: float) -> None:
        self.default_prediction = default_prediction
        self.predictor = self._load(path)
        self.batcher = Batcher(self.predictor.embed_and_dist) if self.predictor else None
        self.version = self.predictor.version if self.predictor else None
        self.reload_error: str | None = None

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
        assert self.batcher is not None
        emb, dist = await self.batcher(text)
        row = [float(x) for x in dist]
        expected = float(self.predictor.bins.expected(dist))
        return InitialPrediction(
            expected=min(expected, float(cap)),
            dist=row,
            embedding=emb,
            version=self.version,
        )

    def swap_head(self, path: str) -> str:
        """Hot reload: a retrained head over the same bins and encoder replaces the running one
        (the engine's posterior starts from this distribution, so the bins must not change)."""
        from trail.predict.prompt import PromptPredictor

        if self.predictor is None:
            raise ValueError("this ingress runs no prompt predictor")
        new = PromptPredictor.load(path)
        if new.bins.to_list() != self.predictor.bins.to_list():
            raise ValueError("prompt head bins differ from the running predictor's")
        same_encoder = (new.adapter is None) == (self.predictor.adapter is None)
        if not same_encoder or new.max_seq_length != self.predictor.max_seq_length:
            raise ValueError("prompt predictor has another encoder: needs a restart")
        self.predictor.head = new.head  # the batcher reads it on its next batch
        self.version = self.predictor.version
        return self.version


def watch_head(predictor: InitialPredictor, path: str, every_s: float) -> threading.Thread:
    """Poll `path` on a daemon thread; a head whose weights differ is swapped in. A version
    that failed is not retried until the weights at `path` change again."""

    def loop() -> None:
        seen: str | None = None
        while True:
            time.sleep(every_s)
            try:
                stamp = hashlib.sha256((Path(path) / "head.pt").read_bytes()).hexdigest()
            except OSError:  # not there (yet), or being re-pointed
                continue
            if stamp == seen:
                continue
            seen = stamp
            try:
                version = predictor.swap_head(path)
                logger.info("prompt head %s from %s", version, path)
            except Exception as err:  # noqa: BLE001 - the running head keeps serving
                predictor.reload_error = f"{path}: {err}"
                logger.error("prompt head reload refused: %s", predictor.reload_error)

    thread = threading.Thread(target=loop, name="prompt-watch", daemon=True)
    thread.start()
    return thread
