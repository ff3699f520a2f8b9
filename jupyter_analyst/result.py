"""The result of one analysis: what ran, what it produced, and how far to trust it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .safety import SafetyReport

if TYPE_CHECKING:
    from .results import Collected


class AttemptStage(str, Enum):
    """Where an attempt ended: refused by the validator, or run in the sandbox."""

    VALIDATE = "validate"
    EXECUTE = "execute"


@dataclass
class Attempt:
    """One try at the question: the code, its safety verdict and what went wrong, if anything."""

    code: str
    risk_level: str
    error: str | None = None
    stage: AttemptStage = AttemptStage.EXECUTE


@dataclass
class AnalysisResult:
    success: bool
    query: str
    insights: list[str] = field(default_factory=list)
    # Each: {"title": str, "format": "png" | "html", "data": base64 PNG or sanitised HTML}
    visualizations: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Each: {"name": file name, "format": "csv" | "json" | "txt", "data": text}
    data_outputs: list[dict[str, str]] = field(default_factory=list)
    execution_time: float = 0.0
    error: str | None = None
    raw_output: str = ""
    code: str = ""
    explanation: str = ""
    safety: SafetyReport | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    # Tables the code displayed (sanitised HTML), shown inline but not files.
    tables: list[dict[str, str]] = field(default_factory=list)
    # What the sandbox reported about its isolation (e.g. "network: isolated"); may be "".
    isolation: str = ""
    # Notes for the user that are not findings: what was left out, cut or skipped, and why.
    notices: list[str] = field(default_factory=list)

    def absorb(self, collected: Collected) -> None:
        """Take the cleaned outputs of a run (the process stage's ``Collected``)."""
        self.visualizations = collected.visualizations
        self.metrics = collected.metrics
        self.tables = collected.tables
        self.data_outputs = collected.data_outputs
        self.raw_output = collected.stdout
        self.notices += collected.notices
        self.isolation = collected.isolation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (the safety report as its own dict)."""
        data = asdict(self)
        data["safety"] = self.safety.to_dict() if self.safety else None
        return data

    def __repr__(self) -> str:
        state = "ok" if self.success else f"failed: {self.error}"
        return (
            f"<AnalysisResult {state}; {len(self.metrics)} metrics, "
            f"{len(self.visualizations)} plots, backend={self.backend or '-'}>"
        )

    def _repr_mimebundle_(self, include=None, exclude=None):
        from .rendering import result_bundle

        return result_bundle(self)


def add_usage(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Add token counts and costs of ``more`` into ``total`` (for several calls or runs)."""
    for key, value in (more or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = (total.get(key) or 0) + value
        elif key not in total:
            total[key] = value


class AnalysisPending(RuntimeError):
    """Raised when a result is used before its analysis was approved and run."""


class PendingResult:
    """Stands in for an ``AnalysisResult`` while its cell waits for approval.

    Run All runs the next cells at once; a cell that reads ``_analysis`` then gets this
    object, and using it says which cell is waiting instead of a ``NameError`` or an
    earlier, stale result.
    """

    def __init__(self, question: str, cell: int | None):
        self._where = f"cell [{cell}]" if cell else "the %%analyze cell"
        self._question = question.strip().splitlines()[0][:80] if question.strip() else ""

    def _message(self) -> str:
        return (f"The analysis in {self._where} ({self._question!r}) is waiting for your "
                f"approval. Click Run in its panel, then run this cell again.")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # IPython's display hooks probe for these
            raise AttributeError(name)
        raise AnalysisPending(self._message())

    def __bool__(self) -> bool:
        raise AnalysisPending(self._message())

    def __repr__(self) -> str:
        return f"<PendingResult: {self._message()}>"
