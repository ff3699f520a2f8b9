"""Estimated cost of a model call from its token usage.

Prices are published list prices in US dollars per million tokens: Anthropic's
(platform.claude.com model pages, November 2026) and OpenAI's (openai.com/api/pricing,
standard tier). A model missing here gets ``cost_usd = None`` ("unknown") rather than
a guess; the status line then shows tokens only. Models with tiered prices (e.g.
Claude Haiku 5.5) are left out on purpose: a single number would be wrong for long
prompts. A model on the user's own machine or server costs nothing per token.
"""

from __future__ import annotations

import re
from typing import Any

# Claude model id -> (input, output) USD per million tokens
PRICES: dict[str, tuple[float, float]] = {
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-opus-5-5": (4.0, 20.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-fable-5-1": (10.0, 50.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-haiku-4-5": (1.0, 5.0),
}
# OpenAI model id -> (input, output); cached input is billed lower, so this is an upper bound.
OPENAI_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
}
LOCAL_PROVIDERS = ("ollama", "openai-compatible")
# Anthropic prompt-cache tokens are billed relative to the input price (5-minute writes, reads).
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1

# "claude-haiku-4-5-20251001" is priced as "claude-haiku-4-5", "gpt-4o-2024-08-06" as "gpt-4o".
_DATED = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


def price_of(provider: str, model: str) -> tuple[float, float] | None:
    if provider in LOCAL_PROVIDERS:
        return (0.0, 0.0)
    table = OPENAI_PRICES if provider == "openai" else PRICES
    return table.get(_DATED.sub("", model))


def usage_dict(provider: str, model: str, input_tokens: int | None, output_tokens: int | None,
               cache_written: int | None = 0, cache_read: int | None = 0) -> dict[str, Any]:
    """``{"input_tokens", "output_tokens", "cost_usd"}`` of one call.

    ``input_tokens`` excludes Anthropic's cache writes and reads, which are given apart
    (OpenAI counts cached tokens inside the prompt tokens and passes none here).
    """
    tokens_in, tokens_out = input_tokens or 0, output_tokens or 0
    written, read = cache_written or 0, cache_read or 0
    price = price_of(provider, model)
    cost = None
    if price is not None:
        billed_in = tokens_in + written * CACHE_WRITE_FACTOR + read * CACHE_READ_FACTOR
        cost = round((billed_in * price[0] + tokens_out * price[1]) / 1_000_000, 6)
    return {
        "input_tokens": tokens_in + written + read,
        "output_tokens": tokens_out,
        "cost_usd": cost,
    }
