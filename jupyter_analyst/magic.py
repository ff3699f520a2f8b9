"""The ``%%analyze`` cell magic: the notebook face of ``PythonAnalysisAgent``.

The magic resolves the frames, then either shows the approval panel and returns
at once (the panel's buttons drive the rest), or, with ``--yes``,
``%config Analyze.auto_approve = True`` or no widget frontend, runs the pipeline
straight through and leaves ordinary outputs that are saved with the notebook.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import os
import queue
import sys
import time
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode

from .agent import PythonAnalysisAgent, frames_from
from .errors import AnalystError, InputError
from .rendering import display_outputs

POLL = 0.25  # seconds between status updates while waiting


@magics_class
class Analyze(Magics):
    """Ask a question about DataFrames; the generated code is checked, then run in a sandbox."""

    auto_approve = Bool(False, help="Run generated code without showing the approval panel.").tag(config=True)
    timeout = Float(300.0, help="Seconds an analysis may run before it is stopped.").tag(config=True)
    backend = CaselessStrEnum(["auto", "docker", "local"], default_value="auto",
                              help="Where code runs: docker, local, or auto (docker if available).").tag(config=True)
    model = Unicode(None, allow_none=True,
                    help="Claude model name, or 'offline'. Default: Claude when ANTHROPIC_API_KEY is set.").tag(config=True)
    privacy = CaselessStrEnum(["sample", "schema"], default_value="sample",
                              help="'schema' sends no cell values to the generator; 'sample' sends a few rows.").tag(config=True)
    mask_personal = Bool(True, help="Mask columns that look personal (emails, names, IDs) in the context.").tag(config=True)
    max_repairs = Int(2, help="How often a failing analysis is sent back to Claude for a fix.").tag(config=True)
    use_cache = Bool(True, help="Reuse cached generator answers for the same question and data.").tag(config=True)
    widgets = CaselessStrEnum(["auto", "always", "never"], default_value="auto",
                              help="Show the approval panel: auto (when a widget frontend is detected), always, never.").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._agents: dict[tuple, PythonAnalysisAgent] = {}

    @magic_arguments()
    @argument("data", nargs="*",
              help="The DataFrame(s): a name (df), an expression (df[df.region == 'EU']) "
                   "or several names separated by commas (prices, holdings).")
    @argument("--yes", "-y", action="store_true", help="Run without asking for approval.")
    @argument("--out", "-o", metavar="NAME", default="_analysis",
              help="Variable that receives the AnalysisResult (default: _analysis).")
    @argument("--timeout", "-t", type=float, metavar="SECONDS", help="Time limit for running the code.")
    @argument("--backend", "-b", choices=["auto", "docker", "local"], help="Sandbox backend.")
    @argument("--model", "-m", metavar="NAME", help="Claude model, or 'offline' for templates.")
    @argument("--type", dest="analysis_type", metavar="TYPE",
              help="Analysis type hint, e.g. portfolio_performance, correlation, distribution, time_series.")
    @argument("--privacy", choices=["sample", "schema"], help="What the generator may see of the data.")
    @argument("--unmask", action="store_true", help="Send columns that look personal unmasked.")
    @argument("--insert", action="store_true", help="Also put the generated code into a new cell below.")
    @argument("--show-prompt", action="store_true", help="Show what would be sent to the generator, send nothing.")
    @argument("--no-cache", action="store_true", help="Ask the generator again even if a cached answer exists.")
    @cell_magic
    def analyze(self, line: str, cell: str) -> None:
        """Analyse DataFrames with generated, safety-checked code that runs in a sandbox kernel.

        Write the question in the cell body:

            %%analyze tips
            Show the distribution of total_bill

        The result is bound to ``_analysis`` (or ``--out NAME``) as an AnalysisResult.
        Defaults are set with %config, e.g. ``%config Analyze.auto_approve = True``.
        """
        try:
            self._analyze(line, cell)
        except AnalystError as exc:
            print(f"%%analyze: {exc.problem}", file=sys.stderr)
            if exc.fix:
                print(exc.fix, file=sys.stderr)
        except UsageError:
            raise  # IPython prints it as a one-line usage message
        except Exception as exc:  # a bug of ours: say so plainly, keep the notebook usable
            sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
            print(f"%%analyze: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            print("Please report it with the cell that caused it; %tb shows the details.",
                  file=sys.stderr)

    # -- steps ----------------------------------------------------------------------------
    def _analyze(self, line: str, cell: str) -> None:
        options, expression = split_line(line)
        args = parse_argstring(self.analyze, " ".join(options))  # UsageError names a bad option
        if not args.out.isidentifier():
            raise InputError(f"--out {args.out!r} is not a valid variable name.", "Use e.g. --out result.")
        if args.timeout is not None and not args.timeout > 0:
            raise InputError(f"--timeout {args.timeout:g} is not a positive number of seconds.",
                             "Give the time limit in seconds, e.g. --timeout 120.")
        question = cell.strip()
        if not question:
            raise InputError("The cell has no question.",
                             "Write the question below the %%analyze line, e.g. 'Show the distribution of price'.")
        frames = self.resolve_frames(expression)
        agent = self.agent_for(args)
        if args.show_prompt:
            request = agent.request_for(question, frames, args.analysis_type)
            print(agent.generator.preview(request))
            return
        timeout = args.timeout or self.timeout
        if args.insert or not (args.yes or self.auto_approve or not self.use_widgets()):
            self._with_panel(agent, args, question, frames, timeout)
        else:
            self._straight_through(agent, args, question, frames, timeout)

    def _with_panel(self, agent, args, question, frames, timeout) -> None:
        proposal = None
        if args.insert:  # set_next_input works only during the magic call, so generate now
            proposal = self._wait(agent.prepare(question, frames, args.analysis_type), agent)
            self.shell.set_next_input(proposal.generated.code, replace=False)
            if args.yes or self.auto_approve or not self.use_widgets():
                self._show_result(self._wait(agent.run(proposal, timeout=timeout), agent), args.out)
                return
        from .ui import ApprovalPanel

        panel = ApprovalPanel(agent, question, frames, analysis_type=args.analysis_type,
                              timeout=timeout, on_result=lambda result: self._bind(args.out, result),
                              proposal=proposal)
        panel.show()

    def _straight_through(self, agent, args, question, frames, timeout) -> None:
        streamed: queue.Queue = queue.Queue()

        def stream(output: dict[str, Any]) -> None:
            if output["output_type"] == "stream":  # plots and tables come with the result
                streamed.put(output)

        coroutine = agent.analyze(question, frames, args.analysis_type, timeout, on_output=stream)
        result = self._wait(coroutine, agent, streamed)
        self._show_result(result, args.out)

    def _wait(self, coroutine, agent: PythonAnalysisAgent, streamed: queue.Queue | None = None):
        """Run ``coroutine`` on the agent's loop, showing a status line and streamed text."""
        future = agent.submit(coroutine)
        started = time.monotonic()
        status = display({"text/plain": ""}, raw=True, display_id=True)
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=POLL)
                self._drain(streamed)
                elapsed = time.monotonic() - started
                status.update({"text/plain": f"⏳ {agent.activity()} · {elapsed:.0f} s"}, raw=True)
            self._drain(streamed)
        except KeyboardInterrupt:
            future.cancel()
            raise
        elapsed = f"{time.monotonic() - started:.1f} s"
        if future.exception() is not None:
            status.update({"text/plain": f"✗ {agent.generator.describe()} · {elapsed}"}, raw=True)
            raise future.exception()
        status.update({"text/plain": f"✓ {agent.generator.describe()} · {agent.sandbox_label()} · "
                                     f"{elapsed}"}, raw=True)
        return future.result()

    @staticmethod
    def _drain(streamed: queue.Queue | None) -> None:
        while streamed is not None and not streamed.empty():
            output = streamed.get_nowait()
            target = sys.stderr if output["name"] == "stderr" else sys.stdout
            target.write(output["text"])
            target.flush()

    def _show_result(self, result, out: str) -> None:
        for output in display_outputs(result, include_code=True):
            display(output["data"], raw=True)
        self._bind(out, result)

    def _bind(self, name: str, result) -> None:
        self.shell.user_ns[name] = result

    # -- helpers -------------------------------------------------------------------------
    def resolve_frames(self, expression: str) -> dict[str, pd.DataFrame]:
        """``{name: frame}`` for the line's data expression, evaluated in the user namespace."""
        if not expression.strip():
            raise InputError("No DataFrame given.", "Name it on the magic line: %%analyze df")
        parts = split_top_level(expression, ",")
        frames: dict[str, pd.DataFrame] = {}
        for part in parts:
            value = self._evaluate(part)
            name = binding_name(part, len(parts), frames)
            if isinstance(value, dict) and len(parts) == 1 and value:
                frames.update(value)  # a dict of frames: bound under its keys
                continue
            frames[name] = value
        return frames_from(frames)

    def _evaluate(self, part: str) -> Any:
        namespace = self.shell.user_ns
        if part.isidentifier():
            if part not in namespace:
                names = [k for k, v in namespace.items() if isinstance(v, pd.DataFrame) and not k.startswith("_")]
                close = difflib.get_close_matches(part, names, n=1)
                hint = f"Did you mean '{close[0]}'?" if close else (
                    f"DataFrames defined: {', '.join(names[:10])}." if names else "Define the DataFrame first.")
                raise InputError(f"Name '{part}' is not defined.", hint)
            return namespace[part]
        try:
            return self.shell.ev(part)
        except Exception as exc:  # the user's own expression; report it like Python would
            raise InputError(f"Could not evaluate '{part}': {type(exc).__name__}: {exc}",
                             "Check the expression in a normal cell first.") from None

    def agent_for(self, args) -> PythonAnalysisAgent:
        """One agent (one warm kernel) per backend and generator choice."""
        backend = args.backend or self.backend
        model = args.model or self.model
        privacy = args.privacy or self.privacy
        key = (backend, model, privacy, not args.unmask and self.mask_personal,
               self.use_cache and not args.no_cache, self.max_repairs)
        if key not in self._agents:
            self._agents[key] = PythonAnalysisAgent(
                model=model, backend=backend, privacy=privacy, mask_personal=key[3],
                use_cache=key[4], max_repairs=self.max_repairs)
        return self._agents[key]

    def use_widgets(self) -> bool:
        if self.widgets != "auto":
            return self.widgets == "always"
        return has_widget_frontend(self.shell)

    def close(self) -> None:
        for agent in self._agents.values():
            agent.cleanup()
        self._agents.clear()


def has_widget_frontend(shell) -> bool:
    """True in a kernel that a notebook UI started (JupyterLab, Notebook 7, VS Code).

    nbconvert and nbval start kernels without a widget frontend; so does a plain
    jupyter_client. Jupyter servers set JPY_SESSION_NAME for the kernels they start.
    """
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return any(v in os.environ for v in ("JPY_SESSION_NAME", "VSCODE_PID"))


def split_line(line: str) -> tuple[list[str], str]:
    """Option tokens and the data expression of a magic line.

    Options start with '-' and a letter outside brackets and quotes; everything
    else is the expression, so ``df[df.x > -1]`` and ``prices, holdings`` survive.
    """
    options, rest = [], []
    chunks = split_top_level(line, " ")
    takes_value = {"--out", "-o", "--timeout", "-t", "--backend", "-b", "--model", "-m",
                   "--type", "--privacy"}
    pending = False
    for chunk in chunks:
        if pending:
            options.append(chunk)
            pending = False
        elif len(chunk) > 1 and chunk[0] == "-" and (chunk[1].isalpha() or chunk[1] == "-"):
            options.append(chunk)
            pending = chunk in takes_value
        else:
            rest.append(chunk)
    return options, " ".join(rest).strip()


def split_top_level(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside brackets and string quotes; drop empty parts."""
    parts, current, depth, quote = [], [], 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def binding_name(expression: str, count: int, taken: dict) -> str:
    """The sandbox name for a frame: its own name, or the name the expression starts from."""
    if expression.isidentifier():
        return expression
    head = ""
    for char in expression:
        if not (char.isalnum() or char == "_"):
            break
        head += char
    name = head if head.isidentifier() and head not in taken else "df"
    return name if name not in taken else f"df{len(taken) + 1}"


_magics: Analyze | None = None


def load_ipython_extension(ipython) -> None:
    global _magics
    if _magics is not None:
        return
    _magics = Analyze(shell=ipython)
    ipython.register_magics(_magics)
    ipython.configurables.append(_magics)


def unload_ipython_extension(ipython) -> None:
    global _magics
    if _magics is None:
        return
    _magics.close()
    ipython.magics_manager.magics["cell"].pop("analyze", None)
    ipython.magics_manager.registry.pop("Analyze", None)
    if _magics in ipython.configurables:
        ipython.configurables.remove(_magics)
    _magics = None
