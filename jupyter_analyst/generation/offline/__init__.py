"""The offline generator: no key, no network; a question read into one recipe's code.

``intent.py`` holds the recipes (one per analysis: its trigger words, the analyses it
absorbs, how it binds columns, the templates it renders) and ``plan``, which reads a
question; ``filters.py`` reads the rows and derived columns a question defines;
``matching.py`` finds column names and values in it; ``followup.py`` reads a follow-up
("the same for tip", "as a boxplot") as a change of the conversation's previous step.
The code is the matching template from ``jupyter_analyst.templates``. Anything else is
refused with a ``NotUnderstoodError`` that says what it can do and names the LLM options,
so it never answers a question other than the one asked.
"""

from __future__ import annotations

from typing import Any

from ...templates import TEMPLATES
from ..base import CodeGenerator, GeneratedCode, GenerationRequest
from .followup import plan_in_thread
from .intent import Plan


class OfflineGenerator(CodeGenerator):
    name = "offline"
    model = None
    can_repair = False  # a template that failed would fail the same way again

    async def generate(self, request: GenerationRequest) -> GeneratedCode:
        chosen = self._plan(request)
        return GeneratedCode(
            code=chosen.code(),
            explanation=f"{chosen.explanation} (offline template '{chosen.template}')",
            generator=self.name,
        )

    async def insights(
        self, request: GenerationRequest, metrics: dict[str, Any], output: str
    ) -> tuple[list[str], dict[str, Any]]:
        """Sentences computed from the executed metrics by the template that produced them."""
        chosen = self._plan(request)
        bindings = {"frame": chosen.frame, **chosen.bindings}
        return TEMPLATES[chosen.template].insights(metrics, bindings), {}

    @staticmethod
    def _plan(request: GenerationRequest) -> Plan:
        """A follow-up ("the same for tip") is read as a change of the previous step."""
        return plan_in_thread(request.question, request.context, request.analysis_type,
                              request.history)

    def describe(self) -> str:
        return "offline templates"
