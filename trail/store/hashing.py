"""Prompt fingerprints: the store keeps a hash, never the prompt text (privacy)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def prompt_hash(text_or_token_ids: str | bytes | Iterable[int]) -> str:
    """sha256 hex of a prompt given as text or token ids.

    A domain prefix keeps text "1,2" and token ids [1, 2] from colliding; equal prompts give
    equal hashes across processes and runs (no salt), so identical prompts can be grouped.
    """
    digest = hashlib.sha256()
    if isinstance(text_or_token_ids, str):
        digest.update(b"text:" + text_or_token_ids.encode("utf-8"))
    elif isinstance(text_or_token_ids, bytes | bytearray):
        digest.update(b"text:" + bytes(text_or_token_ids))
    else:
        digest.update(b"ids:" + ",".join(str(int(t)) for t in text_or_token_ids).encode("ascii"))
    return digest.hexdigest()
