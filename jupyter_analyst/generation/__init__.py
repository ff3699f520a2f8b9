"""Code generation: the interface and the choice between Claude and the offline generator."""

from __future__ import annotations

import os

from ..errors import GenerationError
from .base import CodeGenerator, Exchange, FailedAttempt, GeneratedCode, GenerationRequest

__all__ = [
    "CodeGenerator",
    "Exchange",
    "FailedAttempt",
    "GeneratedCode",
    "GenerationRequest",
    "GeneratorChoice",
    "make_generator",
]

OFFLINE = "offline"
API_KEY_VARIABLE = "ANTHROPIC_API_KEY"


def make_generator(
    model: str | None = None, api_key: str | None = None, use_cache: bool = True
) -> CodeGenerator:
    """Claude when a key is available (argument or ``ANTHROPIC_API_KEY``), else offline.

    ``model="offline"`` forces the offline generator even with a key; a Claude model
    named without a key is an error, never a quiet switch to the offline templates.
    """
    api_key = api_key or os.environ.get(API_KEY_VARIABLE)
    if model == OFFLINE or (model is None and not api_key):
        from .offline import OfflineGenerator

        return OfflineGenerator()
    if not api_key:
        raise GenerationError(
            f"The model {model!r} needs an Anthropic API key, and none is set.",
            f"Set {API_KEY_VARIABLE} (or pass anthropic_api_key=...), or use --model offline.")
    from .claude import ClaudeGenerator

    return ClaudeGenerator(api_key=api_key, model=model, use_cache=use_cache)


class GeneratorChoice:
    """Which generator answers a question, decided when the question is asked.

    The key is read from the environment at that moment, so a key set after the first
    analysis is used by the next. Generators are kept per (model, key), which keeps
    their HTTP clients and caches warm.
    """

    def __init__(self, api_key: str | None = None, fixed: CodeGenerator | None = None):
        self.api_key = api_key
        self.fixed = fixed  # a generator given by the caller answers everything
        self._made: dict[tuple[str | None, str | None], CodeGenerator] = {}

    def get(self, model: str | None) -> CodeGenerator:
        if self.fixed is not None:
            return self.fixed
        key = self.api_key or os.environ.get(API_KEY_VARIABLE) or None
        choice = (model, None if model == OFFLINE else key)
        if choice not in self._made:
            self._made[choice] = make_generator(model=model, api_key=key)
        return self._made[choice]
