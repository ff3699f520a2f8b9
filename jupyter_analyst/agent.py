"""The pipeline: context -> generate -> validate -> (approve) -> execute -> process.

``PythonAnalysisAgent`` composes the stages and is all the magic and the approval
panel talk to. Approval is a seam, not a stage here: ``prepare`` stops before
anything runs, ``run`` executes the approved (possibly edited) code, and
``analyze`` does both for scripts and for auto-approve.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from ._loop import BackgroundLoop
from .context import DataContext, describe_frames
from .errors import AnalystError, GenerationError, InputError
from .generation import CodeGenerator, FailedAttempt, GeneratedCode, GenerationRequest, make_generator
from .result import AnalysisResult, Attempt
from .results import Collected, clean_output, collect
from .safety import SafetyReport, SafetyValidator
from .sandbox import KernelSandbox, SandboxLimits, open_sandbox
from .sandbox.kernel import Execution, timeout_error

OutputCallback = Callable[[dict[str, Any]], None]
DEFAULT_TIMEOUT = 300.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Proposal:
    """Generated, validated code waiting for approval."""

    question: str
    frames: dict[str, pd.DataFrame]
    request: GenerationRequest
    generated: GeneratedCode
    safety: SafetyReport
    warnings: list[str] = field(default_factory=list)


def frames_from(data: Any) -> dict[str, pd.DataFrame]:
    """``{name: frame}`` from a DataFrame (bound as ``df``) or a mapping of names to frames."""
    if isinstance(data, pd.DataFrame):
        frames = {"df": data}
    elif isinstance(data, Mapping) and data:
        frames = dict(data)
    elif isinstance(data, pd.Series):
        raise InputError("The data is a pandas Series, not a DataFrame.",
                         "Convert it with series.to_frame() and analyse that.")
    else:
        raise InputError(f"The data is a {type(data).__name__}, not a pandas DataFrame.",
                         "Pass a DataFrame, or a dict such as {'prices': prices_df}.")
    for name, frame in frames.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"{name!r} cannot be used as a variable name in the sandbox.",
                             "Use dict keys that are Python identifiers, e.g. 'sales_2024'.")
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"'{name}' is a {type(frame).__name__}, not a pandas DataFrame.",
                             "Pass DataFrames only (a Series converts with .to_frame()).")
        if frame.empty:
            raise InputError(f"'{name}' is empty ({frame.shape[0]} rows, {frame.shape[1]} columns).",
                             "Load or filter the data so that it has rows and columns first.")
    return frames


class PythonAnalysisAgent:
    """Answers questions about DataFrames by generating, checking and running code."""

    def __init__(
        self,
        anthropic_api_key: str | None = None,
        model: str | None = None,
        build_sandbox: bool = False,
        backend: str = "auto",
        *,
        privacy: str = "sample",
        mask_personal: bool = True,
        max_repairs: int = 2,
        use_cache: bool = True,
        limits: SandboxLimits | None = None,
        validator: SafetyValidator | None = None,
        generator: CodeGenerator | None = None,
    ):
        self.generator = generator or make_generator(
            model=model, api_key=anthropic_api_key, use_cache=use_cache)
        self.validator = validator or SafetyValidator()
        self.backend = backend
        self.privacy = privacy
        self.mask_personal = mask_personal
        self.max_repairs = max_repairs
        self.limits = limits or SandboxLimits.from_env()
        self._sandbox: KernelSandbox | None = None
        self._execution_lock: asyncio.Lock | None = None
        self._activity = "idle"
        self._loop = BackgroundLoop()
        atexit.register(self.cleanup)
        if build_sandbox:
            from .sandbox.image import build_image

            build_image()

    # -- stages -------------------------------------------------------------------------
    def describe(self, frames: dict[str, pd.DataFrame]) -> DataContext:
        return describe_frames(frames, mode=self.privacy, mask_personal=self.mask_personal)

    def validate(self, code: str) -> SafetyReport:
        return self.validator.validate(code)

    async def prepare(self, query: str, data: Any, analysis_type: str | None = None,
                      fresh: bool = False) -> Proposal:
        """Describe the data, generate code and validate it; nothing runs yet.

        ``fresh=True`` (the Regenerate button) asks for a new answer, not a cached one.
        """
        return await self._loop.run(self._prepare(query, data, analysis_type, fresh))

    async def run(self, proposal: Proposal, code: str | None = None,
                  timeout: float | None = None, on_output: OutputCallback | None = None,
                  repair: bool = True) -> AnalysisResult:
        """Run approved code (``code`` if the user edited it).

        With ``repair`` (auto-approve), failures go back to a generator that can fix
        code, up to ``max_repairs`` times, and each fix runs unasked. The approval
        panel passes ``repair=False`` and asks ``propose_repair`` instead, so a fix
        is shown for approval before it runs.
        """
        return await self._loop.run(self._run(proposal, code, timeout, on_output, repair))

    async def propose_repair(self, proposal: Proposal, failed: AnalysisResult) -> Proposal:
        """A new proposal that fixes the failed code of ``failed``; nothing runs yet."""
        return await self._loop.run(self._propose_repair(proposal, failed))

    async def analyze(self, query: str, data: Any, analysis_type: str | None = None,
                      timeout: float = DEFAULT_TIMEOUT, on_output: OutputCallback | None = None
                      ) -> AnalysisResult:
        """Prepare and run without asking: the script and auto-approve path."""
        return await self._loop.run(self._analyze(query, data, analysis_type, timeout, on_output))

    def analyze_sync(self, query: str, data: Any, analysis_type: str | None = None,
                     timeout: float = DEFAULT_TIMEOUT, on_output: OutputCallback | None = None
                     ) -> AnalysisResult:
        """``analyze`` for scripts without an event loop."""
        return self._loop.run_sync(self._analyze(query, data, analysis_type, timeout, on_output))

    async def batch_analyze(self, queries: Iterable[str], data: Any, max_concurrent: int = 3,
                            timeout: float = DEFAULT_TIMEOUT) -> list[AnalysisResult]:
        """Several questions about the same data; generation overlaps, execution takes turns."""
        frames = frames_from(data)

        async def batch() -> list[AnalysisResult]:
            gate = asyncio.Semaphore(max(1, max_concurrent))

            async def one(query: str) -> AnalysisResult:
                async with gate:
                    return await self._analyze(query, frames, None, timeout, None)

            return list(await asyncio.gather(*(one(q) for q in queries)))

        return await self._loop.run(batch())

    # -- implementation (runs on the private loop) ---------------------------------------
    async def _analyze(self, query, data, analysis_type, timeout, on_output) -> AnalysisResult:
        try:
            proposal = await self._prepare(query, data, analysis_type)
        except InputError:
            raise
        except AnalystError as exc:
            return AnalysisResult(success=False, query=query, error=str(exc),
                                  generator=self._generator_info())
        return await self._run(proposal, None, timeout, on_output)

    def request_for(self, query: str, data: Any, analysis_type: str | None = None
                    ) -> GenerationRequest:
        """What the generator would be asked (also used for ``--show-prompt``)."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("The question is empty.",
                             "Write what you want to know, e.g. 'Show the distribution of price'.")
        return GenerationRequest(question=query.strip(), context=self.describe(frames_from(data)),
                                 analysis_type=analysis_type)

    async def _prepare(self, query: str, data: Any, analysis_type: str | None,
                       fresh: bool = False) -> Proposal:
        frames = frames_from(data)
        request = self.request_for(query, frames, analysis_type)
        request.fresh = fresh
        self._activity = f"generating code with {self.generator.describe()}"
        generated = await self.generator.generate(request)
        return Proposal(question=request.question, frames=frames, request=request,
                        generated=generated, safety=self.validate(generated.code))

    async def _propose_repair(self, proposal: Proposal, failed: AnalysisResult) -> Proposal:
        if not self.generator.can_repair:
            raise GenerationError(f"{self.generator.describe()} cannot repair code.",
                                  "Edit the code yourself, or set ANTHROPIC_API_KEY to use Claude.")
        failures = [FailedAttempt(code=a.code, error=a.error) for a in failed.attempts if a.error]
        if not failures:
            raise InputError("That analysis did not fail; there is nothing to repair.")
        request = replace(proposal.request, failures=failures, fresh=False)
        self._activity = f"asking {self.generator.describe()} for a fix"
        generated = await self.generator.generate(request)
        return Proposal(question=proposal.question, frames=proposal.frames, request=request,
                        generated=generated, safety=self.validate(generated.code))

    async def _run(self, proposal: Proposal, code: str | None, timeout: float | None,
                   on_output: OutputCallback | None, repair: bool = True) -> AnalysisResult:
        started = time.monotonic()
        timeout = timeout or self.limits.timeout
        generated = proposal.generated
        code = code if code is not None else generated.code
        usage = dict(generated.usage)
        attempts: list[Attempt] = []
        failures: list[FailedAttempt] = []
        result = AnalysisResult(success=False, query=proposal.question, code=code,
                                explanation=generated.explanation,
                                generator=self._generator_info(generated))
        warnings = list(proposal.warnings)
        while True:
            report = self.validate(code)
            result.code, result.safety = code, report
            execution = None
            if not report.allowed:
                error = "The safety check refused this code.\n" + report.summary()
                attempts.append(Attempt(code, report.risk_level.value, error, stage="validate"))
            else:
                try:
                    execution, collected, backend = await self._execute(
                        proposal.frames, code, timeout, on_output, warnings)
                except AnalystError as exc:
                    result.error = str(exc)
                    break
                result.backend = backend
                error = self._execution_error(execution, timeout)
                attempts.append(Attempt(code, report.risk_level.value, error))
                if error is None:
                    break
            repairable = execution is None or execution.status == "error"
            if not (repair and repairable and self.generator.can_repair
                    and len(failures) < self.max_repairs):
                result.error = error
                break
            failures.append(FailedAttempt(code=code, error=error))
            request = replace(proposal.request, failures=list(failures), fresh=False)
            try:
                generated = await self.generator.generate(request)
            except AnalystError as exc:
                result.error = f"{error}\nThe repair failed too: {exc}"
                break
            add_usage(usage, generated.usage)
            code, result.explanation = generated.code, generated.explanation
        result.attempts, result.usage = attempts, usage
        if execution is not None:
            self._fill(result, collected)
        if execution is not None and result.error is None:
            self._activity = "writing insights"
            try:
                insights, insight_usage = await self.generator.insights(
                    proposal.request, result.metrics, result.raw_output)
                result.insights = insights
                add_usage(usage, insight_usage)
            except AnalystError as exc:
                warnings.append(f"No insights: {exc}")
            result.success = True
        result.insights = warnings + result.insights if warnings else result.insights
        result.execution_time = time.monotonic() - started
        return result

    async def _execute(self, frames, code, timeout, on_output, warnings
                       ) -> tuple[Execution, Collected, str]:
        """Run ``code`` with the frames bound; outputs are cleaned before anyone sees them."""
        self._activity = "starting the sandbox kernel"
        sandbox = await self._ensure_sandbox(warnings)
        async with self._execution_lock:  # one kernel: analyses take turns
            self._activity = f"running in the {sandbox.label} sandbox"
            warnings += await sandbox.bind_frames(frames)
            sandbox.clear_outputs()
            cleaned: list[dict[str, Any]] = []

            def forward(output: dict[str, Any]) -> None:
                output = clean_output(output)
                if output is not None:
                    cleaned.append(output)
                    if on_output is not None:
                        on_output(output)

            execution = await sandbox.execute(code, timeout=timeout, on_output=forward)
            execution.outputs = cleaned
            return execution, collect(cleaned, sandbox.output_dir), sandbox.label

    @staticmethod
    def _fill(result: AnalysisResult, collected: Collected) -> None:
        result.visualizations = collected.visualizations
        result.metrics = collected.metrics
        result.tables = collected.tables
        result.data_outputs = collected.data_outputs
        result.raw_output = collected.stdout

    @staticmethod
    def _execution_error(execution: Execution, timeout: float) -> str | None:
        if execution.status == "ok":
            return None
        if execution.status == "timeout":
            return str(timeout_error(timeout))
        if execution.status == "died":
            return ("The sandbox kernel stopped while running the code (most often it ran out of "
                    "memory). It has been restarted; ask for less data at once and try again.")
        error = execution.error or {}
        return f"{error.get('ename', 'Error')}: {error.get('evalue', '')}\n" + _code_line(error)

    async def _ensure_sandbox(self, warnings: list[str]) -> KernelSandbox:
        """The warm sandbox, started on first use; a backend fallback is told in ``warnings``."""
        if self._execution_lock is None:
            self._execution_lock = asyncio.Lock()
        if self._sandbox is None:
            sandbox, note = open_sandbox(self.backend, self.limits)
            if note:
                warnings.append(note)
            await sandbox.start()
            self._sandbox = sandbox
        return self._sandbox

    def _generator_info(self, generated: GeneratedCode | None = None) -> dict[str, Any]:
        info = {"name": self.generator.name, "model": self.generator.model}
        if generated is not None and generated.cached:
            info["cached"] = True
        return info

    def submit(self, coroutine) -> concurrent.futures.Future:
        """Schedule a coroutine of this agent's on its private loop (for UI callbacks)."""
        return self._loop.submit(coroutine)

    def activity(self) -> str:
        """What the agent is doing now, for a status line."""
        return self._activity

    @property
    def sandbox(self) -> KernelSandbox | None:
        return self._sandbox

    def sandbox_label(self) -> str:
        return self._sandbox.label if self._sandbox else f"{self.backend} (not started)"

    # -- lifecycle ------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop the sandbox kernel (and its container) and the private loop. Idempotent."""
        if self._loop.running:
            if self._sandbox is not None:
                try:
                    self._loop.run_sync(self._sandbox.shutdown(), timeout=60)
                finally:
                    self._sandbox = None
            self._loop.stop()
        atexit.unregister(self.cleanup)

    def __enter__(self) -> "PythonAnalysisAgent":
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    async def __aenter__(self) -> "PythonAnalysisAgent":
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.cleanup()


def add_usage(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Add token counts and costs of ``more`` into ``total`` (for several calls or runs)."""
    for key, value in (more or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = (total.get(key) or 0) + value
        elif key not in total:
            total[key] = value


def _code_line(error: dict[str, Any]) -> str:
    """Where in the analysed code the error arose: the cell frame's line and its arrow line."""
    plain = [_ANSI.sub("", line) for line in error.get("traceback", [])]
    cell_frames = [frame for frame in plain if frame.lstrip().startswith("Cell In[")]
    if not cell_frames:
        return ""
    lines = cell_frames[-1].splitlines()
    where = lines[0].strip().replace("Cell In", "Cell", 1)
    arrow = next((line.strip() for line in lines if line.lstrip().startswith("---->")), "")
    return f"{where}: {arrow.removeprefix('---->').strip()}" if arrow else where


async def quick_analyze(query: str, data: Any, anthropic_api_key: str | None = None,
                        **options: Any) -> AnalysisResult:
    """One question, one throwaway agent: for a quick look from a script."""
    agent = PythonAnalysisAgent(anthropic_api_key=anthropic_api_key, **options)
    try:
        return await agent.analyze(query, data)
    finally:
        agent.cleanup()
