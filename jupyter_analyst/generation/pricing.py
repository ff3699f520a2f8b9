"""Estimated cost of a Claude call from its token usage.

Prices are Anthropic's published list prices in US dollars per million tokens
(platform.claude.com model pages, November 2026). A model missing here gets
``cost_usd = None`` ("unknown") rather than a guess; the status line then shows
tokens only. Models with tiered prices (e.g. Claude Haiku 5.5) are left out on
purpose: a single number would be wrong for long prompts.
"""

from __future__ import annotations

import re
from typing import Any

# model id -> (input, output) USD per million tokens
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
# Prompt-cache tokens are billed relative to the input price (5-minute writes, reads).
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1

_DATED = re.compile(r"-\d{8}$")  # "claude-haiku-4-5-20251001" is priced as "claude-haiku-4-5"


def price_of(model: str) -> tuple[float, float] | None:
    return PRICES.get(_DATED.sub("", model))


def usage_dict(model: str, usage: Any) -> dict[str, Any]:
    """``{"input_tokens", "output_tokens", "cost_usd"}`` from an SDK ``Usage`` object."""
    tokens_in = usage.input_tokens or 0
    tokens_out = usage.output_tokens or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    price = price_of(model)
    cost = None
    if price is not None:
        billed_in = tokens_in + written * CACHE_WRITE_FACTOR + read * CACHE_READ_FACTOR
        cost = round((billed_in * price[0] + tokens_out * price[1]) / 1_000_000, 6)
    return {
        "input_tokens": tokens_in + written + read,
        "output_tokens": tokens_out,
        "cost_usd": cost,
    }

