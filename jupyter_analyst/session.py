"""One question about some frames, from the first proposal to the last run.

An ``AnalysisSession`` is the ledger of a question: the proposal waiting for approval,
every attempt that ran or was refused, the tokens spent, and how many fixes may still
be asked for. The approval panel and the magic hold a session; neither keeps books of
its own. The warm sandbox, the generators and the validator belong to the agent and
are shared by every session of a notebook.

Every coroutine here runs on the agent's private event loop (``agent.submit`` from a
widget callback, or awaited through the public methods from any other loop).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import pandas as pd

from .context import PRIVACY_MODES
from .errors import AnalystError, GenerationError, InputError
from .generation import (
    BrokenCell,
    CodeGenerator,
    Exchange,
    FailedAttempt,
    GeneratedCode,
    GenerationRequest,
)
from .result import AnalysisResult, Attempt, AttemptStage, add_usage
from .safety import SafetyReport

if TYPE_CHECKING:
    from .agent import PythonAnalysisAgent

log = logging.getLogger(__name__)
OutputCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RequestOptions:
    """How one question is asked and run; the single source of these defaults.

    ``None`` means "the configured value": ``model`` the agent's generator choice,
    ``timeout`` the sandbox limits' (``SANDBOX_TIMEOUT``) at the moment the code runs.
    """

    privacy: str = "sample"  # "schema": no cell values leave the machine
    mask_personal: bool = True
    use_cache: bool = True
    model: str | None = None
    analysis_type: str | None = None
    timeout: float | None = None
    max_repairs: int = 2
    # How many of the notebook's last cells ``%%analyze`` sends along (0: none).
    context_cells: int = 0

    def __post_init__(self) -> None:
        if self.privacy not in PRIVACY_MODES:
            raise InputError(f"Unknown privacy mode {self.privacy!r}.",
                             f"Use one of: {', '.join(PRIVACY_MODES)}.")
        if self.timeout is not None and not self.timeout > 0:
            raise InputError(f"The time limit {self.timeout:g} s is not a positive number.",
                             "Give the time limit in seconds, e.g. timeout=120.")
        if self.max_repairs < 0:
            raise InputError(f"max_repairs={self.max_repairs} is negative.",
                             "Use 0 for no automatic fixes, or a small number such as 2.")
        if self.context_cells < 0:
            raise InputError(f"{self.context_cells} notebook cells cannot be sent along.",
                             "Use 0 to send none, or a small number such as 3.")


class Activity(str, Enum):
    """What a session is doing, for a status line."""

    IDLE = "idle"
    GENERATING = "generating code"
    CHECKING = "checking the code"
    STARTING = "starting the sandbox"
    RUNNING = "running the code"
    REPAIRING = "asking for a fix"
    INSIGHTS = "writing insights"
    FIXING = "asking for a fixed cell"


@dataclass
class Proposal:
    """Generated, validated code waiting for approval."""

    question: str
    frames: dict[str, pd.DataFrame]
    request: GenerationRequest
    generated: GeneratedCode
    safety: SafetyReport
    warnings: list[str] = field(default_factory=list)


_SESSION_NUMBERS = itertools.count(1)
# Bounds of what a follow-up carries of the conversation; the oldest steps go first.
MAX_THREAD_CHARS = 16_000
MAX_STEP_CODE = 4_000
MAX_STEP_OUTPUT = 600
MAX_STEP_METRICS = 30


class Thread:
    """A conversation: consecutive questions whose follow-ups remember the earlier steps.

    Each finished step is kept as an ``Exchange`` (question, code that ran, a digest of its
    results); a new question's request carries the newest steps that fit in
    ``MAX_THREAD_CHARS``. In privacy mode 'schema' the digest holds metric names only.
    ``ask`` is the Python API's follow-up; ``%%analyze`` keeps one thread per notebook and
    ``--new`` starts another.
    """

    def __init__(self, agent: PythonAnalysisAgent | None = None):
        self.agent = agent
        self._steps: dict[int, Exchange] = {}  # session number -> its latest finished run

    def __len__(self) -> int:
        return len(self._steps)

    def history(self) -> list[Exchange]:
        """The newest steps that fit the bound, oldest first."""
        kept, size = [], 0
        for step in reversed(list(self._steps.values())):
            size += len(step.question) + len(step.code) + len(repr(step.digest))
            if size > MAX_THREAD_CHARS:
                break
            kept.append(step)
        return kept[::-1]

    def record(self, session: AnalysisSession, result: AnalysisResult) -> None:
        """Keep ``result`` as the step of ``session`` (a fix or a re-run replaces it)."""
        schema = session.options.privacy == "schema"
        metrics = dict(list(result.metrics.items())[:MAX_STEP_METRICS])
        digest: dict[str, Any] = {"succeeded": result.success}
        if schema:  # values are data: only what the code computed, by name
            digest["metric_names"] = list(metrics)
        else:
            digest["metrics"] = metrics
            if result.raw_output:
                digest["printed_output_end"] = result.raw_output[-MAX_STEP_OUTPUT:]
            if result.error:
                digest["error"] = result.error[-MAX_STEP_OUTPUT:]
        self._steps.pop(session.number, None)  # newest last
        self._steps[session.number] = Exchange(question=session.question,
                                            code=result.code[-MAX_STEP_CODE:], digest=digest)

    async def ask(self, query: str, data: Any, **options: Any) -> AnalysisResult:
        """A follow-up question: answered with this conversation's earlier steps in mind."""
        if self.agent is None:
            raise InputError("This thread belongs to no agent.", "Use agent.thread().")
        return await self.agent.session(query, data, thread=self, **options).answer()


@dataclass
class FixProposal:
    """A generated, validated fix of a notebook cell, waiting for the user."""

    cell: BrokenCell
    generated: GeneratedCode
    safety: SafetyReport


class CellFix:
    """``%analyze fix``: a fix of a cell of the user's own notebook that raised.

    The fix is generated and validated like an analysis, but it is not an analysis:
    nothing runs in the sandbox, and nothing runs in the user's kernel either. Approving
    it puts the code into a new cell, which the user runs, or not.
    """

    def __init__(self, agent: PythonAnalysisAgent, cell: BrokenCell, model: str | None = None):
        self.agent = agent
        self.cell = cell
        self.generator: CodeGenerator = agent.generator_for(model)
        self.proposal: FixProposal | None = None
        self.activity = Activity.IDLE

    def describe_activity(self) -> str:
        return f"{self.activity.value} with {self.generator.describe()}"

    async def prepare(self) -> FixProposal:
        """Ask for the fix and validate it; nothing runs."""
        return await self.agent.on_loop(self._propose())

    async def _propose(self) -> FixProposal:
        self.activity = Activity.FIXING
        try:
            generated = await self.generator.fix_cell(self.cell)
        finally:
            self.activity = Activity.IDLE
        self.proposal = FixProposal(self.cell, generated, self.agent.validate(generated.code))
        return self.proposal


class AnalysisSession:
    """The proposal, attempts, usage and fixes left of one question."""

    def __init__(self, agent: PythonAnalysisAgent, question: str,
                 frames: dict[str, pd.DataFrame], options: RequestOptions,
                 thread: Thread | None = None, notebook_cells: list[str] | None = None):
        self.agent = agent
        self.number = next(_SESSION_NUMBERS)  # unique, unlike id() of a collected object
        self.options = options
        self.frames = frames
        self.thread = thread
        # A streaming generator reports its progress here, for the status line.
        self.request = replace(agent.request_for(question, frames, options),
                               on_progress=self._on_progress)
        if thread is not None:
            self.request.history = thread.history()
        self.request.notebook_cells = list(notebook_cells or [])
        self.question = self.request.question
        self.generator: CodeGenerator = agent.generator_for(options.model)
        self.proposal: Proposal | None = None
        self.result: AnalysisResult | None = None
        self.attempts: list[Attempt] = []
        self.usage: dict[str, Any] = {}
        self.repairs_used = 0
        self.activity = Activity.IDLE
        self._activity_detail = ""
        self._progress = ""

    # -- what the UI reads ----------------------------------------------------------------
    @property
    def repairs_left(self) -> int:
        return max(0, self.options.max_repairs - self.repairs_used)

    @property
    def can_fix(self) -> bool:
        """True when the last run failed in a way a generator could fix, and fixes are left."""
        result = self.result
        return (result is not None and not result.success and bool(result.attempts)
                and self.generator.can_repair and self.repairs_left > 0)

    def describe_activity(self) -> str:
        """E.g. 'generating code with Claude (claude-sonnet-5-5) (~420 tokens, 6 s)'."""
        progress = f" ({self._progress})" if self._progress else ""
        return f"{self.activity.value}{self._activity_detail}{progress}"

    def _on_progress(self, text: str) -> None:
        self._progress = text

    def _doing(self, activity: Activity, detail: str = "") -> None:
        self.activity, self._activity_detail, self._progress = activity, detail, ""
        log.debug("%s%s: %s", activity.value, detail, self.question[:80])

    # -- steps ----------------------------------------------------------------------------
    async def prepare(self, fresh: bool = False) -> Proposal:
        """Generate and validate code; nothing runs. ``fresh``: not a cached answer."""
        return await self.agent.on_loop(self._propose(fresh=fresh))

    async def propose_fix(self) -> Proposal:
        """A proposal that fixes the last failed run; nothing runs yet."""
        return await self.agent.on_loop(self._propose_fix())

    async def run(self, code: str | None = None, on_output: OutputCallback | None = None,
                  repair: bool = False) -> AnalysisResult:
        """Run the proposal's code (or ``code``, the user's edit of it).

        With ``repair`` (auto-approve), a failure goes back to a generator that can fix
        code, while fixes are left, and each fix runs unasked. The approval panel keeps
        ``repair=False`` and asks ``propose_fix`` instead, so a fix is shown first.
        """
        return await self.agent.on_loop(self._run(code, on_output, repair))

    async def answer(self, on_output: OutputCallback | None = None) -> AnalysisResult:
        """Prepare and run without asking: the script and auto-approve path."""
        return await self.agent.on_loop(self._answer(on_output))

    # -- implementation (on the agent's loop) -------------------------------------------
    async def _answer(self, on_output: OutputCallback | None) -> AnalysisResult:
        try:
            await self._propose(fresh=False)
        except InputError:
            raise
        except AnalystError as exc:
            self.result = AnalysisResult(success=False, query=self.question, error=str(exc),
                                         generator=self._generator_info())
            return self.result
        return await self._run(None, on_output, repair=True)

    async def _propose(self, fresh: bool, failures: list[FailedAttempt] | None = None
                       ) -> Proposal:
        request = replace(self.request, failures=list(failures or []),
                          fresh=fresh or not self.options.use_cache)
        detail = f" with {self.generator.describe()}"
        self.agent.prestart()  # the sandbox starts while the code is written
        self._doing(Activity.REPAIRING if failures else Activity.GENERATING, detail)
        try:
            generated = await self.generator.generate(request)
        finally:
            self._doing(Activity.IDLE)
        self._doing(Activity.CHECKING)
        add_usage(self.usage, generated.usage)
        self.proposal = Proposal(question=self.question, frames=self.frames, request=request,
                                 generated=generated, safety=self.agent.validate(generated.code))
        log.info("proposal from %s: risk %s", self.generator.describe(),
                 self.proposal.safety.risk_level.value)
        self._doing(Activity.IDLE)
        return self.proposal

    async def _propose_fix(self) -> Proposal:
        if not self.generator.can_repair:
            raise GenerationError(f"{self.generator.describe()} cannot repair code.",
                                  "Edit the code yourself, or choose a model that can "
                                  "(--model anthropic:…, openai:… or ollama:…; see "
                                  "docs/models.md).")
        if self.result is None or self.result.success or not self._failures():
            raise InputError("That analysis did not fail; there is nothing to repair.")
        if self.repairs_left == 0:
            raise GenerationError(
                f"No more fixes are proposed ({self.repairs_used} asked for).",
                "Edit the code or regenerate, then run again.")
        self.repairs_used += 1
        return await self._propose(fresh=False, failures=self._failures())

    def _failures(self) -> list[FailedAttempt]:
        return [FailedAttempt(code=a.code, error=a.error, stage=a.stage)
                for a in self.attempts if a.error]

    async def _run(self, code: str | None, on_output: OutputCallback | None,
                   repair: bool) -> AnalysisResult:
        if self.proposal is None:
            raise InputError("There is no proposal to run yet.", "Call prepare() first.")
        started = time.monotonic()
        proposal = self.proposal
        code = code if code is not None else proposal.generated.code
        explanation = proposal.generated.explanation
        result = AnalysisResult(success=False, query=self.question,
                                generator=self._generator_info(proposal.generated))
        notices = list(proposal.warnings)
        collected = None
        while True:
            # The proposal's own report when its code runs unchanged (the check is pure).
            unchanged = self.proposal is not None and code == self.proposal.generated.code
            report = self.proposal.safety if unchanged else self.agent.validate(code)
            result.code, result.safety, result.explanation = code, report, explanation
            execution = None
            if not report.allowed:
                error = "The safety check refused this code.\n" + report.summary()
                self.attempts.append(Attempt(code, report.risk_level.value, error,
                                             stage=AttemptStage.VALIDATE))
            else:
                try:
                    if not self.agent.sandbox_started:
                        chosen = self.agent.backend  # 'auto' is decided by the start
                        self._doing(Activity.STARTING, "" if chosen == "auto" else f" ({chosen})")
                        await self.agent.start_sandbox()
                    self._doing(Activity.RUNNING, f" in the {self.agent.sandbox_label()} sandbox")
                    execution, collected, backend = await self.agent.execute(
                        self.frames, code, self.options.timeout, on_output, notices)
                except AnalystError as exc:
                    result.error = str(exc)
                    break
                finally:
                    self._doing(Activity.IDLE)
                result.backend = backend
                error = self.agent.execution_error(execution, self.options.timeout)
                self.attempts.append(Attempt(code, report.risk_level.value, error))
                if error is None:
                    break
            repairable = execution is None or execution.repairable
            if not (repair and repairable and self.generator.can_repair and self.repairs_left):
                result.error = error
                break
            self.repairs_used += 1
            try:
                fix = await self._propose(fresh=False, failures=self._failures())
            except AnalystError as exc:
                result.error = f"{error}\nThe repair failed too: {exc}"
                break
            code, explanation = fix.generated.code, fix.generated.explanation
        if collected is not None:
            result.absorb(collected)
        if collected is not None and result.error is None:
            result.success = True
            await self._write_insights(result, notices)
        result.notices = notices + result.notices  # apart from insights, which are findings
        result.attempts, result.usage = list(self.attempts), dict(self.usage)
        result.execution_time = time.monotonic() - started
        log.info("analysis %s in %.2f s on %s", "succeeded" if result.success else "failed",
                 result.execution_time, result.backend or "-")
        if self.thread is not None and collected is not None:  # it ran: a step to remember
            self.thread.record(self, result)
        self.result = result
        return result

    async def _write_insights(self, result: AnalysisResult, notices: list[str]) -> None:
        self._doing(Activity.INSIGHTS)
        try:
            insights, usage = await self.generator.insights(
                self.request, result.metrics, result.raw_output)
        except AnalystError as exc:
            notices.append(f"No insights: {exc}")
            return
        finally:
            self._doing(Activity.IDLE)
        result.insights = insights
        add_usage(self.usage, usage)

    def _generator_info(self, generated: GeneratedCode | None = None) -> dict[str, Any]:
        info = {"name": self.generator.name, "model": self.generator.model}
        if generated is not None and generated.cached:
            info["cached"] = True
        return info
