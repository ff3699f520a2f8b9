"""Code generation: the interface and the choice of generator for a ``provider:model`` name."""

from __future__ import annotations

from .base import (
    BrokenCell,
    CodeGenerator,
    Exchange,
    FailedAttempt,
    GeneratedCode,
    GenerationRequest,
)
from .providers import ANTHROPIC, OFFLINE, ModelSpec, resolve

__all__ = [
    "BrokenCell",
    "CodeGenerator",
    "Exchange",
    "FailedAttempt",
    "GeneratedCode",
    "GenerationRequest",
    "GeneratorChoice",
    "make_generator",
]


def make_generator(
    model: str | None = None, api_key: str | None = None, use_cache: bool = True
) -> CodeGenerator:
    """The generator for ``model`` (``provider:id``, a bare Claude id, or ``offline``).

    ``None`` is Claude when an Anthropic key is available (argument or
    ``ANTHROPIC_API_KEY``), else offline. A provider named without its key or address
    is an error naming the variable, never a quiet switch to the offline templates.
    """
    return build(resolve(model, api_key), use_cache=use_cache)


def build(spec: ModelSpec, use_cache: bool = True) -> CodeGenerator:
    if spec.provider == OFFLINE:
        from .offline import OfflineGenerator

        return OfflineGenerator()
    if spec.provider == ANTHROPIC:
        from .claude import ClaudeGenerator

        return ClaudeGenerator(api_key=spec.api_key, model=spec.model, use_cache=use_cache)
    from .openai_compat import OpenAIGenerator

    return OpenAIGenerator(spec, use_cache=use_cache)


class GeneratorChoice:
    """Which generator answers a question, decided when the question is asked.

    Keys and addresses are read from the environment at that moment, so a key set
    after the first analysis is used by the next. Generators are kept per resolved
    model (provider, id, address, key), which keeps their caches and what they learnt
    about a server (that it refuses tools) for the next question.
    """

    def __init__(self, api_key: str | None = None, fixed: CodeGenerator | None = None):
        self.api_key = api_key
        self.fixed = fixed  # a generator given by the caller answers everything
        self._made: dict[ModelSpec, CodeGenerator] = {}

    def get(self, model: str | None) -> CodeGenerator:
        if self.fixed is not None:
            return self.fixed
        spec = resolve(model, self.api_key)
        if spec not in self._made:
            self._made[spec] = build(spec)
        return self._made[spec]
