"""The code generator interface: a question plus a data context in, Python code out."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..context import DataContext
from ..errors import GenerationError


@dataclass
class FailedAttempt:
    """Code that was refused or failed, fed back to a generator that can repair."""

    code: str
    error: str  # validator findings or the kernel's error, plain text
    # "validate" (findings about the code only) or "execute" (the kernel's error, which may
    # quote cell values: redacted in privacy mode 'schema'), as in ``result.Attempt``.
    stage: str = "execute"


@dataclass
class Exchange:
    """An earlier step of the conversation: its question, the code that ran, what it found.

    ``digest`` holds metric names (with values, unless in privacy mode 'schema'), the end
    of the printed output and the error, already bounded by the thread.
    """

    question: str
    code: str
    digest: dict[str, Any] = field(default_factory=dict)


@dataclass
class BrokenCell:
    """A cell of the user's own notebook that raised (``%analyze fix``): what to fix."""

    source: str  # the cell as the user wrote it
    error: str  # its traceback as plain text, terminal escapes removed
    number: int | None = None  # its prompt number, In[number]
    privacy: str = "sample"  # 'schema': the traceback keeps only words of the cell and errors


@dataclass
class GenerationRequest:
    question: str
    context: DataContext
    analysis_type: str | None = None
    # Earlier tries of this same question, newest last; non-empty means "repair".
    failures: list[FailedAttempt] = field(default_factory=list)
    # Ask the generator for a new answer even if one is cached (the Regenerate button).
    fresh: bool = False
    # The conversation so far (earlier %%analyze cells of the thread), oldest first.
    history: list[Exchange] = field(default_factory=list)
    # Source of the user's last notebook cells (``--context N``), oldest first.
    notebook_cells: list[str] = field(default_factory=list)
    # Called with e.g. "~420 tokens, 6 s" while a reply streams in (for a status line).
    on_progress: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class GeneratedCode:
    code: str
    explanation: str
    generator: str  # "offline", "claude", "openai", "ollama" or "openai-compatible"
    model: str | None = None
    # {"input_tokens": int, "output_tokens": int, "cost_usd": float | None}
    usage: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


class CodeGenerator(abc.ABC):
    """Turns a question about described frames into code for the sandbox kernel."""

    name: str = ""
    model: str | None = None
    can_repair: bool = False

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> GeneratedCode:
        """Code answering ``request.question``; raise GenerationError with a fix on failure."""

    @abc.abstractmethod
    async def insights(
        self, request: GenerationRequest, metrics: dict[str, Any], output: str
    ) -> tuple[list[str], dict[str, Any]]:
        """Short findings written only from executed ``metrics`` and ``output``, and usage."""

    async def fix_cell(self, cell: BrokenCell) -> GeneratedCode:
        """A corrected version of a cell of the user's own notebook that raised."""
        raise GenerationError(
            f"Fixing a notebook cell needs a language model, which {self.describe()} is not.",
            "Set ANTHROPIC_API_KEY, or choose a model with %config Analyze.model = "
            "'provider:model' (see docs/models.md).")

    def preview(self, request: GenerationRequest) -> str:
        """Exactly what would be sent to a remote model for ``request`` (``--show-prompt``)."""
        return f"{self.describe()} runs on this machine: nothing is sent anywhere."

    def describe(self) -> str:
        """For the status line, e.g. 'offline templates' or 'Claude (claude-sonnet-4-5)'."""
        return self.name if not self.model else f"{self.name} ({self.model})"
