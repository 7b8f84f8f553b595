"""The served model's chat template, in one place (profiling, tests and engines agree)."""

from __future__ import annotations

from typing import Any


def chat_prompt_ids(tokenizer: Any, user_text: str) -> list[int]:
    """Token ids of a one-turn chat prompt with the generation prompt appended."""
    text = chat_prompt_text(tokenizer, user_text)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_prompt_text(tokenizer: Any, user_text: str) -> str:
    return messages_prompt_text(tokenizer, [{"role": "user", "content": user_text}])


def messages_prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The rendered prompt of a conversation, with the generation prompt appended."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
