"""Code generation: the interface and the choice between Claude and the offline generator."""

from __future__ import annotations

import os

from .base import CodeGenerator, FailedAttempt, GeneratedCode, GenerationRequest

__all__ = [
    "CodeGenerator",
    "FailedAttempt",
    "GeneratedCode",
    "GenerationRequest",
    "make_generator",
]

OFFLINE = "offline"


def make_generator(
    model: str | None = None, api_key: str | None = None, use_cache: bool = True
) -> CodeGenerator:
    """Claude when a key is available (argument or ``ANTHROPIC_API_KEY``), else offline.

    ``model="offline"`` forces the offline generator even with a key.
    """
    api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
    if model == OFFLINE or not api_key:
        from .offline import OfflineGenerator

        return OfflineGenerator()
    from .claude import ClaudeGenerator

    return ClaudeGenerator(api_key=api_key, model=model, use_cache=use_cache)
