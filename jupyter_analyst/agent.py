"""The pipeline: context -> generate -> validate -> (approve) -> execute -> process.

``PythonAnalysisAgent`` owns what every question of a notebook shares: the warm
sandbox of its backend, the generators (one per model, chosen when a question is
asked, so a key set later is used) and the validator. Each question is an
``AnalysisSession`` (see ``session``), which keeps that question's proposal,
attempts and usage. ``analyze`` is a session answered without asking; the approval
panel drives a session step by step.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import logging
import re
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import pandas as pd

from ._loop import BackgroundLoop
from .context import describe_frames
from .errors import AnalystError, InputError, SandboxError
from .generation import CodeGenerator, GenerationRequest, GeneratorChoice
from .result import AnalysisResult
from .results import Collected, Intake
from .safety import SafetyReport, SafetyValidator
from .sandbox import ExecutionStatus, KernelSandbox, SandboxLimits, open_sandbox
from .sandbox.kernel import Execution, timeout_error
from .sandbox.limits import host_memory
from .session import AnalysisSession, OutputCallback, RequestOptions, Thread

log = logging.getLogger(__name__)
T = TypeVar("T")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DISK_FULL = "No space left on device"  # ENOSPC, as Python words it
SHUTDOWN_TIMEOUT = 60.0  # seconds for the sandbox to stop at cleanup
PRESTART = True  # start the sandbox before it is needed (%config Analyze.prestart)


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
            raise InputError(f"'{name}' is empty ({frame.shape[0]} rows, {frame.shape[1]} "
                             "columns).",
                             "Load or filter the data so that it has rows and columns first.")
        twice = frame.columns[frame.columns.duplicated()].unique()
        if len(twice):  # a column name would stand for several columns, in code and Parquet
            raise InputError(f"'{name}' has more than one column named "
                             f"{', '.join(repr(c) for c in twice[:5])}.",
                             f"Give each column its own name first, e.g. {name}.columns = "
                             f"[...], or keep the first: {name}.loc[:, ~{name}.columns."
                             "duplicated()].")
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
        privacy: str = RequestOptions.privacy,
        mask_personal: bool = RequestOptions.mask_personal,
        max_repairs: int = RequestOptions.max_repairs,
        use_cache: bool = RequestOptions.use_cache,
        limits: SandboxLimits | None = None,
        validator: SafetyValidator | None = None,
        generator: CodeGenerator | None = None,
        prestart: bool = PRESTART,
    ):
        # The defaults of every question; each may be overridden per question.
        self.defaults = RequestOptions(privacy=privacy, mask_personal=mask_personal,
                                       use_cache=use_cache, model=model,
                                       max_repairs=max_repairs)
        self._generators = GeneratorChoice(api_key=anthropic_api_key, fixed=generator)
        self.validator = validator or SafetyValidator()
        self.backend = backend
        self._limits = limits  # None: SandboxLimits.from_env() whenever they are needed
        self.prestart_enabled = prestart  # False: the sandbox starts when code first runs
        self._sandbox: KernelSandbox | None = None
        self._execution_lock: asyncio.Lock | None = None
        self._starting: asyncio.Future | None = None  # a sandbox start under way
        self._start_notes: list[str] = []  # what the start said, for the next analysis
        self._extras: list[asyncio.Future] = []  # batch_analyze's further sandboxes, kept warm
        self._loop = BackgroundLoop()
        atexit.register(self.cleanup)
        if build_sandbox:
            from .sandbox.image import build_image

            build_image()

    # -- settings, read when used ----------------------------------------------------
    @property
    def limits(self) -> SandboxLimits:
        """The limits given, or the environment's (SANDBOX_*) as they are now."""
        return self._limits or SandboxLimits.from_env()

    @property
    def max_repairs(self) -> int:
        return self.defaults.max_repairs

    def options(self, **overrides: Any) -> RequestOptions:
        """This agent's defaults with ``overrides`` applied (``None`` keeps the default)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self.defaults, **given)

    def generator_for(self, model: str | None = None) -> CodeGenerator:
        """The generator for ``model`` (or the default choice), with the key as it is now."""
        return self._generators.get(model if model is not None else self.defaults.model)

    @property
    def generator(self) -> CodeGenerator:
        """The generator a question without ``model`` would use now."""
        return self.generator_for()

    # -- stages ------------------------------------------------------------------------
    def validate(self, code: str) -> SafetyReport:
        return self.validator.validate(code)

    def request_for(self, query: str, data: Any, options: RequestOptions | None = None
                    ) -> GenerationRequest:
        """What the generator would be asked (also used for ``--show-prompt``)."""
        if not isinstance(query, str) or not query.strip():
            raise InputError("The question is empty.",
                             "Write what you want to know, e.g. 'Show the distribution of price'.")
        options = options or self.defaults
        context = describe_frames(frames_from(data), mode=options.privacy,
                                  mask_personal=options.mask_personal)
        return GenerationRequest(question=query.strip(), context=context,
                                 analysis_type=options.analysis_type)

    def session(self, query: str, data: Any, thread: Thread | None = None,
                notebook_cells: list[str] | None = None, **options: Any) -> AnalysisSession:
        """A new question about ``data``; ``options`` are fields of ``RequestOptions``.

        With ``thread``, the question is a follow-up in that conversation;
        ``notebook_cells`` (source code) are sent along as the notebook around it.
        """
        return AnalysisSession(self, query, frames_from(data), self.options(**options),
                               thread=thread, notebook_cells=notebook_cells)

    def thread(self) -> Thread:
        """A new conversation: ``await thread.ask(question, data)`` remembers earlier steps."""
        return Thread(self)

    async def analyze(self, query: str, data: Any, analysis_type: str | None = None,
                      timeout: float | None = None, on_output: OutputCallback | None = None,
                      **options: Any) -> AnalysisResult:
        """Prepare and run without asking: the script and auto-approve path.

        ``timeout=None`` is the configured limit (``SANDBOX_TIMEOUT``, else 300 s).
        """
        session = self.session(query, data, analysis_type=analysis_type, timeout=timeout,
                               **options)
        return await session.answer(on_output)

    def analyze_sync(self, query: str, data: Any, analysis_type: str | None = None,
                     timeout: float | None = None, on_output: OutputCallback | None = None,
                     **options: Any) -> AnalysisResult:
        """``analyze`` for scripts without an event loop."""
        session = self.session(query, data, analysis_type=analysis_type, timeout=timeout,
                               **options)
        return self._loop.run_sync(session.answer(on_output))

    async def batch_analyze(self, queries: Iterable[str], data: Any, max_concurrent: int = 3,
                            timeout: float | None = None) -> list[AnalysisResult]:
        """Several questions about the same data, on up to ``max_concurrent`` warm sandboxes.

        The agent's own sandbox and up to ``max_concurrent - 1`` more (started now, kept
        warm for the next batch) each load the frames once and take the questions in
        turn. As many sandboxes run as their memory limits fit in this machine's memory
        (a lower number is said in every result). Results come back in the order of
        ``queries``; a question that fails does not stop the others.
        """
        frames = frames_from(data)
        queries = list(queries)
        sandboxes, note = self._pool_size(max_concurrent)

        async def batch() -> list[AnalysisResult]:
            pool: asyncio.Queue[KernelSandbox | BaseException] = asyncio.Queue()
            starts = [asyncio.ensure_future(self._ensure_sandbox())]
            starts += [asyncio.ensure_future(self._extra_sandbox(i)) for i in
                       range(sandboxes - 1)]
            for start in starts:
                start.add_done_callback(lambda done: _join_pool(pool, done, starts))
            gate = asyncio.Semaphore(sandboxes)
            token = _batch_pool.set(pool)  # the sessions' executions draw from the pool
            try:
                async def one(query: str) -> AnalysisResult:
                    async with gate:
                        session = self.session(query, frames, timeout=timeout)
                        return await session.answer()

                answers = await asyncio.gather(*(one(q) for q in queries),
                                               return_exceptions=True)
            finally:
                _batch_pool.reset(token)
                await asyncio.wait(starts)
            results = [_failed(q, a) if isinstance(a, BaseException) else a
                       for q, a in zip(queries, answers)]
            for result in results:
                result.notices += [note] if note else []
            return results

        return await self.on_loop(batch())

    def _pool_size(self, requested: int) -> tuple[int, str | None]:
        """How many sandboxes a batch may use: as asked, within the machine's memory."""
        requested = max(1, requested)
        memory = self.limits.memory
        fit = max(1, host_memory() // memory)
        if requested <= fit:
            return requested, None
        note = (f"The batch ran on {fit} sandbox{'es' if fit > 1 else ''}, not "
                f"{requested}: {requested} sandboxes of {memory / 1024**3:g} GiB "
                f"(SANDBOX_MEMORY_LIMIT) would not fit in this machine's "
                f"{host_memory() / 1024**3:.1f} GiB of memory.")
        log.warning(note)
        return fit, note

    async def _extra_sandbox(self, number: int) -> KernelSandbox:
        """The ``number``-th extra sandbox of the batch pool, started when first needed."""
        while len(self._extras) <= number:
            self._extras.append(asyncio.ensure_future(self._start_extra()))
        starting = self._extras[number]
        try:
            return await asyncio.shield(starting)
        except AnalystError:
            if self._extras[number] is starting:  # the next batch tries again
                self._extras[number] = asyncio.ensure_future(self._start_extra())
            raise

    async def _start_extra(self) -> KernelSandbox:
        sandbox, _ = open_sandbox(self.backend, self.limits)
        await sandbox.start()
        return sandbox

    # -- execution (on the private loop) -------------------------------------------------
    async def execute(self, frames: dict[str, pd.DataFrame], code: str, timeout: float | None,
                      on_output: OutputCallback | None, notices: list[str]
                      ) -> tuple[Execution, Collected, str]:
        """Run ``code`` with the frames bound; outputs are cleaned before anyone sees them.

        Within ``batch_analyze``, on a sandbox of its pool; otherwise on the warm sandbox.
        """
        pool = _batch_pool.get()
        if pool is None:
            return await self._execute_on(await self._ensure_sandbox(), frames, code, timeout,
                                          on_output, notices)
        sandbox = await pool.get()
        try:
            if isinstance(sandbox, BaseException):  # no sandbox of the pool started
                raise sandbox
            return await self._execute_on(sandbox, frames, code, timeout, on_output, notices)
        finally:
            pool.put_nowait(sandbox)

    async def _execute_on(self, sandbox: KernelSandbox, frames: dict[str, pd.DataFrame],
                          code: str, timeout: float | None, on_output: OutputCallback | None,
                          notices: list[str]) -> tuple[Execution, Collected, str]:
        notices += self._start_notes  # a backend note, told once, with the first analysis
        self._start_notes = []
        # One kernel: analyses take turns (a batch's extra sandbox is leased to one at a time).
        turn = self._execution_lock if sandbox is self._sandbox else contextlib.nullcontext()
        async with turn:
            notices += await sandbox.bind_frames(frames)
            sandbox.clear_outputs()
            intake = Intake()  # every output checked, all of them within one quota

            def forward(output: dict[str, Any]) -> None:
                output = intake.clean(output)
                if output is not None and on_output is not None:
                    on_output(output)

            execution = await sandbox.execute(code, timeout=self._timeout(timeout),
                                              on_output=forward)
            log.info("execution %s in %.2f s", execution.status, execution.duration)
            execution.outputs = intake.outputs
            collected = intake.collect(sandbox.output_dir)
            collected.isolation = sandbox.isolation_report()
            return execution, collected, sandbox.label

    def _timeout(self, timeout: float | None) -> float:
        return timeout if timeout is not None else self.limits.timeout

    def execution_error(self, execution: Execution, timeout: float | None) -> str | None:
        """The error of an execution in words, or None when it succeeded."""
        if execution.status == ExecutionStatus.OK:
            return None
        if execution.status == ExecutionStatus.TIMEOUT:
            return str(timeout_error(self._timeout(timeout)))
        if execution.status == ExecutionStatus.DIED:
            return ("The sandbox kernel stopped while running the code (most often it ran out of "
                    "memory). It has been restarted; ask for less data at once and try again.")
        error = execution.error or {}
        message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}\n" + _code_line(error)
        if _DISK_FULL in str(error.get("evalue", "")):
            limits = self.limits
            message += (f"\nThe sandbox's files are full: outputs/ holds at most "
                        f"{limits.outputs_size // 2**20} MiB and {limits.outputs_files:,} files "
                        "for one analysis, and /tmp is small. Write fewer or smaller files (a "
                        "lower savefig dpi, the head of a table rather than all of it).")
        return message

    async def _ensure_sandbox(self) -> KernelSandbox:
        """The warm sandbox, started on first use (what its start said: ``_start_notes``).

        A start already under way (``prestart``) is awaited, not repeated; a start that
        failed is tried again by the next analysis.
        """
        if self._execution_lock is None:
            self._execution_lock = asyncio.Lock()
        if self._sandbox is None:
            if self._starting is None:
                self._starting = asyncio.ensure_future(self._start_sandbox())
            starting = self._starting
            try:
                self._sandbox = await asyncio.shield(starting)
            finally:
                if starting.done():
                    self._starting = None
        return self._sandbox

    async def _start_sandbox(self) -> KernelSandbox:
        sandbox, note = open_sandbox(self.backend, self.limits)
        if note:
            self._start_notes.append(note)
        log.info("starting the %s sandbox", sandbox.label)
        await sandbox.start()
        return sandbox

    def prestart(self) -> None:
        """Start the sandbox in the background, so the first analysis does not wait for it.

        Called while code is being generated, and by the magic when it loads; does nothing
        when the agent was made with ``prestart=False`` (``%config Analyze.prestart =
        False``). A failure here says nothing: the analysis that needs the sandbox reports it.
        """
        if self.prestart_enabled and self._sandbox is None and self._loop.running:
            self._loop.submit(self._prestart())

    async def _prestart(self) -> None:
        try:
            await self._ensure_sandbox()
        except AnalystError as exc:
            log.info("sandbox pre-start failed: %s", exc.problem)

    # -- the private loop ----------------------------------------------------------------
    async def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` on this agent's private loop, from any loop."""
        return await self._loop.run(coroutine)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the private loop (for UI callbacks); returns at once."""
        return self._loop.submit(coroutine)

    @property
    def sandbox(self) -> KernelSandbox | None:
        return self._sandbox

    def sandbox_label(self) -> str:
        return self._sandbox.label if self._sandbox else self.backend

    @property
    def sandbox_started(self) -> bool:
        return self._sandbox is not None

    async def start_sandbox(self) -> None:
        """Start the warm sandbox now, unless it runs (on the agent's loop), so that a status
        line can say "starting" and then "running" with the isolation really in force."""
        await self._ensure_sandbox()

    # -- lifecycle ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the sandbox kernel (and its container), awaiting it, then the private loop."""
        if self._loop.running:
            await self.on_loop(self._shutdown_sandbox())
        self.cleanup()

    def cleanup(self) -> None:
        """Stop the sandbox kernel (and its container) and the private loop. Idempotent."""
        if self._loop.running:
            try:
                self._loop.run_sync(self._shutdown_sandbox(), timeout=SHUTDOWN_TIMEOUT)
            finally:
                self._loop.stop()
        atexit.unregister(self.cleanup)

    async def _shutdown_sandbox(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None:  # a pre-start still under way ends first
            await asyncio.wait({starting})
            if not starting.cancelled() and starting.exception() is None:
                self._sandbox = self._sandbox or starting.result()
        extras, self._extras = self._extras, []
        if extras:
            await asyncio.wait(extras)
        sandbox, self._sandbox = self._sandbox, None
        sandboxes = [sandbox] if sandbox is not None else []
        sandboxes += [e.result() for e in extras if not e.cancelled() and not e.exception()]
        for sandbox in sandboxes:
            log.info("stopping the %s sandbox", sandbox.label)
            await sandbox.shutdown()

    def __enter__(self) -> PythonAnalysisAgent:
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    async def __aenter__(self) -> PythonAnalysisAgent:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


# The pool of the batch being answered (a context variable: each batch's sessions see theirs).
_batch_pool: contextvars.ContextVar[asyncio.Queue | None] = contextvars.ContextVar(
    "batch_pool", default=None)


def _join_pool(pool: asyncio.Queue, start: asyncio.Future, starts: list[asyncio.Future]) -> None:
    """A sandbox that started joins the pool; when none could, the last failure stands in
    for one, so the executions waiting on the pool report it instead of waiting forever."""
    if not start.cancelled() and start.exception() is None:
        pool.put_nowait(start.result())
        return
    failed = [s for s in starts if s.done() and (s.cancelled() or s.exception() is not None)]
    if len(failed) == len(starts):
        pool.put_nowait(start.exception() or SandboxError("The sandbox start was cancelled."))
    elif start.exception() is not None:
        log.warning("a batch sandbox did not start: %s", start.exception())


def _failed(query: str, exc: BaseException) -> AnalysisResult:
    """A batch question that raised (bad input, an unexpected error) as a failed result."""
    if not isinstance(exc, Exception):  # cancellation and exits are not a question's failure
        raise exc
    return AnalysisResult(success=False, query=str(query), error=str(exc))


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
        await agent.aclose()
