"""The ``%%analyze`` cell magic: the notebook face of ``PythonAnalysisAgent``.

The magic resolves the frames, then either shows the approval panel and returns
at once (the panel's buttons drive the rest), or, with ``--yes``,
``%config Analyze.auto_approve = True`` or no widget frontend, runs the pipeline
straight through and leaves ordinary outputs that are saved with the notebook.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import inspect
import logging
import os
import queue
import shutil
import sys
import time
import weakref
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, observe, validate

from .agent import PRESTART, PythonAnalysisAgent, frames_from
from .approvals import ApprovalStore, approval_key, data_digest
from .context import PRIVACY_MODES
from .errors import AnalystError, InputError
from .generation.providers import describe_all
from .notebook import last_failure, recent_cells
from .rendering import display_outputs
from .result import PendingResult
from .sandbox import BACKENDS
from .session import Activity, AnalysisSession, CellFix, RequestOptions, Thread

POLL = 0.25  # seconds between status updates while waiting
STATUS_CLOCK = " … "  # between what is happening and for how long
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
HELP = ("help", "--help", "-h")  # what asks either magic for its usage
log = logging.getLogger("jupyter_analyst")


@magics_class
class Analyze(Magics):
    """Ask a question about DataFrames; the generated code is checked, then run in a sandbox."""

    auto_approve = Bool(False, help="Run generated code without showing the approval panel."
                        ).tag(config=True)
    timeout = Float(None, allow_none=True,
                    help="Seconds an analysis may run before it is stopped (default: "
                         "SANDBOX_TIMEOUT, else 300).").tag(config=True)
    backend = CaselessStrEnum(BACKENDS, default_value="auto",
                              help="Where code runs: docker, local, gateway (Jupyter "
                                   "Enterprise Gateway), or auto (docker if available)."
                              ).tag(config=True)
    gateway_url = Unicode("", help="The Enterprise Gateway of the gateway backend (sets "
                                   "JUPYTER_GATEWAY_URL; its token: JUPYTER_GATEWAY_AUTH_TOKEN)."
                          ).tag(config=True)
    model = Unicode(None, allow_none=True,
                    help="provider:model (anthropic:, openai:, ollama:, openai-compatible:), a "
                         "Claude id, or 'offline'. Default: Claude when ANTHROPIC_API_KEY is "
                         "set, else offline.").tag(config=True)
    privacy = CaselessStrEnum(PRIVACY_MODES, default_value=RequestOptions.privacy,
                              help="'schema' sends no cell values to the generator; 'sample' "
                                   "sends a few rows.").tag(config=True)
    mask_personal = Bool(RequestOptions.mask_personal,
                         help="Mask columns that look personal (emails, names, IDs) in the "
                              "context.").tag(config=True)
    max_repairs = Int(RequestOptions.max_repairs,
                      help="How often a failing analysis is sent back to Claude for a fix."
                      ).tag(config=True)
    context_cells = Int(RequestOptions.context_cells,
                        help="How many of the notebook's last cells (their source) each "
                             "%%analyze sends along; 0 sends none.").tag(config=True)
    use_cache = Bool(RequestOptions.use_cache,
                     help="Reuse cached generator answers for the same question and data."
                     ).tag(config=True)
    widgets = CaselessStrEnum(["auto", "always", "never"], default_value="auto",
                              help="Show the approval panel: auto (when a widget frontend is "
                                   "detected), always, never.").tag(config=True)
    log_level = CaselessStrEnum(LOG_LEVELS, default_value="WARNING",
                                help="How much the jupyter_analyst logger prints to stderr."
                                ).tag(config=True)
    remember_approvals = Bool(True, help="Re-run approved code without asking when the question "
                                         "and data are unchanged (kept in "
                                         ".jupyter-analyst/ next to the notebook)."
                              ).tag(config=True)

    prestart = Bool(PRESTART, help="Start the sandbox in the background (when the extension "
                                   "loads, and while code is written), so the first analysis "
                                   "does not wait for it.").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._agents: dict[str, PythonAnalysisAgent] = {}  # one warm sandbox per backend
        self._panels: weakref.WeakSet = weakref.WeakSet()
        self._idle_sigint: Any = None
        self.approvals = ApprovalStore()
        self.thread = Thread()  # consecutive %%analyze cells are one conversation
        self.data = ""  # its data expression, which a cell that names none continues with
        self._set_log_level(self.log_level)
        if shell is not None:
            shell.observe(self._on_exit, names="exit_now")

    @validate("timeout")
    def _positive_timeout(self, proposal) -> float | None:
        value = proposal["value"]
        if value is not None and not value > 0:
            raise TraitError(f"Analyze.timeout must be a positive number of seconds, "
                             f"not {value!r}.")
        return value

    @validate("max_repairs")
    def _non_negative_repairs(self, proposal) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"Analyze.max_repairs cannot be negative ({proposal['value']}).")
        return proposal["value"]

    @validate("context_cells")
    def _non_negative_context(self, proposal) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"Analyze.context_cells cannot be negative ({proposal['value']}).")
        return proposal["value"]

    @observe("prestart")
    def _prestart_changed(self, change) -> None:
        for agent in getattr(self, "_agents", {}).values():  # none yet while configured
            agent.prestart_enabled = change["new"]

    @observe("gateway_url")
    def _gateway_url_changed(self, change) -> None:
        from .sandbox.gateway import URL_ENV  # read when the gateway sandbox starts

        os.environ[URL_ENV] = change["new"]

    @observe("log_level")
    def _log_level_changed(self, change) -> None:
        self._set_log_level(change["new"])

    @staticmethod
    def _set_log_level(level: str) -> None:
        log.setLevel(level.upper())
        if not any(getattr(h, "_jupyter_analyst", False) for h in log.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
            handler._jupyter_analyst = True
            log.addHandler(handler)

    @magic_arguments()
    @argument("data", nargs="*",
              help="The DataFrame(s): a name (df), an expression (df[df.region == 'EU']) "
                   "or several names separated by commas (prices, holdings).")
    @argument("--yes", "-y", action="store_true", help="Run without asking for approval.")
    @argument("--out", "-o", metavar="NAME", default="_analysis",
              help="Variable that receives the AnalysisResult (default: _analysis).")
    @argument("--timeout", "-t", type=float, metavar="SECONDS",
              help="Time limit for running the code.")
    @argument("--backend", "-b", choices=BACKENDS, help="Sandbox backend.")
    @argument("--model", "-m", metavar="NAME",
              help="provider:model, e.g. ollama:qwen2.5-coder:7b, or 'offline' for templates.")
    @argument("--type", dest="analysis_type", metavar="TYPE",
              help="Analysis type hint, e.g. portfolio_performance, correlation, distribution, "
                   "time_series.")
    @argument("--privacy", choices=PRIVACY_MODES, help="What the generator may see of the data.")
    @argument("--unmask", action="store_true", help="Send columns that look personal unmasked.")
    @argument("--insert", action="store_true",
              help="Also put the generated code into a new cell below.")
    @argument("--show-prompt", action="store_true",
              help="Show what would be sent to the generator, send nothing.")
    @argument("--no-cache", action="store_true",
              help="Ask the generator again even if a cached answer exists.")
    @argument("--new", action="store_true",
              help="Start a new conversation: earlier %%%%analyze cells are not sent along.")
    @argument("--context", type=int, metavar="N",
              help="Send the source of the notebook's last N cells along (0: none).")
    @cell_magic
    def analyze(self, line: str, cell: str) -> None:
        """Analyse DataFrames with generated, safety-checked code that runs in a sandbox kernel.

        Write the question in the cell body:

            %%analyze tips
            Show the distribution of total_bill

        A cell that names no data continues with the previous cell's (a follow-up);
        ``--new`` starts a new conversation. The result is bound to ``_analysis`` (or
        ``--out NAME``) as an AnalysisResult. Defaults are set with %config, e.g.
        ``%config Analyze.auto_approve = True``.
        """
        try:
            self._analyze(line, cell)
        except AnalystError as exc:
            print(f"%%analyze: {exc.problem}", file=sys.stderr)
            if exc.fix:
                print(exc.fix, file=sys.stderr)
        except (UsageError, KeyboardInterrupt):
            raise  # IPython prints a usage message; an interrupt is the user's own
        except Exception as exc:  # a bug of ours: say so plainly, then let %tb and %debug see it
            print(f"%%analyze: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            print("This is a bug in jupyter-analyst; please report it with the cell that "
                  "caused it (the traceback follows).", file=sys.stderr)
            raise

    # -- steps ----------------------------------------------------------------------------
    def _analyze(self, line: str, cell: str) -> None:
        options, expression = split_line(line)
        if set(options) & set(HELP):
            print(usage())
            return
        args = parse_argstring(self.analyze, " ".join(options))  # UsageError names a bad option
        if not args.out.isidentifier():
            raise InputError(f"--out {args.out!r} is not a valid variable name.",
                             "Use e.g. --out result.")
        if args.timeout is not None and not args.timeout > 0:
            raise InputError(f"--timeout {args.timeout:g} is not a positive number of seconds.",
                             "Give the time limit in seconds, e.g. --timeout 120.")
        question = cell.strip()
        if not question:
            raise InputError("The cell has no question.",
                             "Write the question below the %%analyze line, e.g. 'Show the "
                             "distribution of price'.")
        if args.new:
            self.thread, self.data = Thread(), ""
        if not expression and self.data:  # a follow-up: the conversation's data again
            expression = self.data
            print(f"Data: {expression}, as in the previous %%analyze cell.")
        frames = self.resolve_frames(expression)
        self.data = expression
        options = self.request_options(args)
        session = self.agent_for(args.backend).session(
            question, frames, thread=self.thread,
            notebook_cells=recent_cells(self.shell, options["context_cells"]), **options)
        if args.show_prompt:
            print(session.generator.preview(session.request))
            return
        if args.insert or not (args.yes or self.auto_approve or not self.use_widgets()):
            self._with_panel(session, args, follow_up_line(line))
        else:
            self._straight_through(session, args)

    def request_options(self, args) -> dict[str, Any]:
        """The request options of one cell: its flags over the ``%config`` defaults."""
        return {
            "privacy": args.privacy or self.privacy,
            "mask_personal": self.mask_personal and not args.unmask,
            "use_cache": self.use_cache and not args.no_cache,
            "model": args.model or self.model,
            "analysis_type": args.analysis_type,
            "timeout": args.timeout or self.timeout,
            "max_repairs": self.max_repairs,
            "context_cells": self.context_cells if args.context is None else args.context,
        }

    def _with_panel(self, session: AnalysisSession, args, follow_up: str) -> None:
        # Generated during the call: the cell shows progress, Run All waits for the code,
        # and an approval given earlier can be recognised before anything is shown.
        proposal = self._wait(session.prepare(), session, final=False)
        if args.insert:  # set_next_input works only during the magic call
            self.shell.set_next_input(proposal.generated.code, replace=False)
        data = data_digest(session.frames)
        if self.remember_approvals and proposal.safety.allowed and self.approvals.is_approved(
                approval_key(session.question, data, proposal.generated.code)):
            print("This code was approved before for this question and data, so it runs "
                  "without asking (`%analyze revoke` forgets approvals).")
            self._run_approved(session, args)
            return
        from .ui import ApprovalPanel, ResultSlots

        # IPython counts this cell already: its prompt number is one less.
        self._bind(args.out, PendingResult(session.question, self.shell.execution_count - 1))

        def finished(result) -> None:
            self._bind(args.out, result)
            if self.remember_approvals and result.attempts and result.safety is not None \
                    and result.safety.allowed:  # the user clicked Run on exactly this code
                self.approvals.approve(approval_key(session.question, data, result.code))

        panel = ApprovalPanel(session, on_result=finished, follow_up=follow_up)
        panel.show()
        panel.slots = ResultSlots()  # below the panel: where the results are saved
        self._panels.add(panel)
        self._forward_interrupts()

    def _run_approved(self, session: AnalysisSession, args) -> None:
        """Run the approved proposal as it is: a failure is reported, never fixed unasked."""
        streamed: queue.Queue = queue.Queue()
        result = self._wait(session.run(on_output=streamed.put, repair=False), session, streamed)
        self._show_result(result, args.out)

    def _straight_through(self, session: AnalysisSession, args) -> None:
        streamed: queue.Queue = queue.Queue()
        result = self._wait(session.answer(on_output=streamed.put), session, streamed)
        self._show_result(result, args.out)

    def _wait(self, coroutine, session: AnalysisSession, streamed: queue.Queue | None = None,
              final: bool = True):
        """Run ``coroutine`` on the agent's loop, showing a status line and streamed text.

        ``final=False``: the status line is cleared at the end (the panel takes over).
        """
        future = session.agent.submit(coroutine)
        started = time.monotonic()
        status = StatusDisplay(self.shell, live=self.use_widgets())
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=POLL)
                self._drain(streamed, status)
                if session.activity is Activity.IDLE:  # between two steps: keep the last
                    continue
                doing = session.describe_activity()
                status.show(f"{doing[:1].upper()}{doing[1:]}{STATUS_CLOCK}"
                            f"{time.monotonic() - started:.0f} s")
            self._drain(streamed, status)
        except KeyboardInterrupt:
            future.cancel()
            status.show("Interrupted: nothing more runs.", final=True)
            raise
        elapsed = f"{time.monotonic() - started:.1f} s"
        generator = session.generator.describe()
        if future.exception() is not None:
            status.show(f"✖ {generator} · {elapsed}", final=True)
            raise future.exception()
        result = future.result()
        if not final:
            status.show("", final=True)
        elif getattr(result, "success", False):
            status.show(f"✓ Done · {generator} · {session.agent.sandbox_label()} · {elapsed}",
                        final=True)
        else:
            status.show(f"✖ The analysis failed · {generator} · {elapsed}", final=True)
        return result

    @staticmethod
    def _drain(streamed: queue.Queue | None, status: StatusDisplay) -> None:
        while streamed is not None and not streamed.empty():
            output = streamed.get_nowait()
            if output.get("output_type") != "stream":
                continue  # plots and tables come with the result
            status.clear()  # in a terminal the text goes on a line of its own
            target = sys.stderr if output["name"] == "stderr" else sys.stdout
            target.write(output["text"])
            target.flush()

    def _show_result(self, result, out: str) -> None:
        for output in display_outputs(result, include_code=True):
            display(output["data"], raw=True)
        self._bind(out, result)

    def _bind(self, name: str, result) -> None:
        self.shell.user_ns[name] = result

    # -- the notebook around the panels -----------------------------------------------
    def _forward_interrupts(self) -> None:
        """The notebook's Interrupt stops an analysis its panel is running.

        Between cells ipykernel ignores SIGINT; it restores the handler it saved before
        each cell, so ours goes there and stays in force while the kernel is idle.
        """
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None or not hasattr(kernel, "saved_sigint_handler"):
            return
        if kernel.saved_sigint_handler != self._on_interrupt:
            self._idle_sigint = kernel.saved_sigint_handler
            kernel.saved_sigint_handler = self._on_interrupt

    def _on_interrupt(self, signum, frame) -> None:
        stopped = [panel for panel in list(self._panels) if panel.stop()]
        log.info("interrupt: stopped %d running analyses", len(stopped))
        if not stopped and callable(self._idle_sigint):
            self._idle_sigint(signum, frame)

    def _on_exit(self, change) -> None:
        """The notebook's kernel is shutting down or restarting: no panel may look alive."""
        if change["new"]:
            for panel in list(self._panels):
                panel.abandon("✖ The notebook's kernel stopped while this analysis was under "
                              "way; run the cell again.")

    @line_magic("analyze")
    def analyze_line(self, line: str) -> None:
        """%analyze fix [--yes] | models | approvals | revoke.

        ``fix``: the cell that raised most recently gets a proposed fix, shown as a diff for
        review; approved, it goes into a new cell below (it runs when you run that cell).
        With ``--yes`` or without a widget frontend the diff is printed and the fixed code
        is put in the next input.

        ``models``: the model providers that are configured and whether each answers (as
        ``jupyter-analyst models``).

        ``approvals`` / ``revoke``: an approved cell re-run with the same question, data
        and code runs without asking; the approvals live in
        .jupyter-analyst/approvals.json in the notebook's folder.
        """
        command, *flags = line.split() or [HELP[0]]
        if command in HELP and not flags:
            print(usage())
        elif command == "fix" and set(flags) <= {"--yes", "-y"}:
            try:
                self._fix(straight=bool(flags))
            except AnalystError as exc:
                print(f"%analyze fix: {exc.problem}", file=sys.stderr)
                if exc.fix:
                    print(exc.fix, file=sys.stderr)
        elif command == "models" and not flags:
            print(describe_all())
        elif command == "approvals" and not flags:
            print(f"{len(self.approvals)} approvals are kept in {self.approvals.path}.")
        elif command == "revoke" and not flags:
            print(f"Forgot {self.approvals.revoke()} approvals ({self.approvals.path}); "
                  "every analysis asks again.")
        else:
            raise UsageError("Use `%analyze fix [--yes]`, `%analyze models`, `%analyze "
                             "approvals` or `%analyze revoke` (the cell magic %%analyze takes "
                             "a question).")

    def _fix(self, straight: bool) -> None:
        """Propose a fix of the cell that raised last; nothing runs, here or in the sandbox."""
        cell = last_failure(self.shell, privacy=self.privacy)
        if cell is None:
            print("There is no recent error in this notebook to fix: run the cell that fails, "
                  "then `%analyze fix`.")
            return
        fix = CellFix(self.agent_for(), cell, model=self.model)
        proposal = self._wait(fix.prepare(), fix, final=False)
        if not (straight or self.auto_approve or not self.use_widgets()):
            from .ui import FixPanel

            FixPanel(fix).show()
            return
        from .ui.views import diff_lines

        print(f"Proposed fix of In[{cell.number}] from {fix.generator.describe()}: "
              f"{proposal.generated.explanation}")
        print("\n".join(diff_lines(cell.source, proposal.generated.code,
                                   f"your cell In[{cell.number}]")) or "(no changes)")
        print(proposal.safety.summary())
        if not proposal.safety.allowed:
            print("The safety check refused this fix, so it was not put into a cell.")
            return
        self.shell.set_next_input(proposal.generated.code, replace=False)
        print("The fixed code is in the next cell: run it when you are ready; nothing has run.")

    # -- helpers -------------------------------------------------------------------------
    def resolve_frames(self, expression: str) -> dict[str, pd.DataFrame]:
        """``{name: frame}`` for the line's data expression, evaluated in the user namespace."""
        if not expression.strip():
            names = self._frame_names()
            raise InputError("No DataFrame given.", "Name it on the magic line: %%analyze "
                             + (names[0] if len(names) == 1 else "df")
                             + (f" (DataFrames defined: {', '.join(names[:10])})." if names
                                else ", after defining it in a cell above."))
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
                names = self._frame_names()
                close = difflib.get_close_matches(part, names, n=1)
                hint = f"Did you mean '{close[0]}'?" if close else (
                    f"DataFrames defined: {', '.join(names[:10])}." if names
                    else "Define the DataFrame first.")
                raise InputError(f"Name '{part}' is not defined.", hint)
            return namespace[part]
        try:
            return self.shell.ev(part)
        except Exception as exc:  # the user's own expression; report it like Python would
            raise InputError(f"Could not evaluate '{part}': {type(exc).__name__}: {exc}",
                             "Check the expression in a normal cell first.") from None

    def _frame_names(self) -> list[str]:
        """The user's DataFrames, by name, for hints."""
        return [name for name, value in self.shell.user_ns.items()
                if isinstance(value, pd.DataFrame) and not name.startswith("_")]

    def agent_for(self, backend: str | None = None) -> PythonAnalysisAgent:
        """The agent (one warm sandbox) of a backend, shared by every question asked here."""
        backend = backend or self.backend
        if backend not in self._agents:
            self._agents[backend] = PythonAnalysisAgent(backend=backend, prestart=self.prestart)
        return self._agents[backend]

    def use_widgets(self) -> bool:
        if self.widgets != "auto":
            return self.widgets == "always"
        return has_widget_frontend(self.shell)

    def close(self) -> None:
        if self.shell is not None:
            self.shell.unobserve(self._on_exit, names="exit_now")
        kernel = getattr(self.shell, "kernel", None)
        if getattr(kernel, "saved_sigint_handler", None) == self._on_interrupt:
            kernel.saved_sigint_handler = self._idle_sigint
        for agent in self._agents.values():
            agent.cleanup()
        self._agents.clear()


class StatusDisplay:
    """One status line that changes in place: a display in notebooks, ``\\r`` in a terminal.

    Where neither can be rewritten (a script, output piped to a file), a line is printed
    only when what is happening changes, not at every tick of its clock.

    ``live`` (a widget frontend): while work is under way the line is a ``StatusLine``
    widget, which says by itself that the kernel went away if it restarts mid-run (the
    frontend drops the old kernel's last messages); the final text replaces it.
    """

    def __init__(self, shell, live: bool = False):
        notebook = type(shell).__name__ == "ZMQInteractiveShell"
        self._terminal = not notebook and sys.stdout.isatty()
        self._line = None
        self._handle = None
        self._width = 0
        self._last_step = ""
        if not notebook:
            return
        shown = {"text/plain": ""}
        if live:
            from .ui.editor import StatusLine

            self._line = StatusLine(busy=True)
            # Saved only if the final text never replaced the widget: say what that means.
            shown = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0,
                                   "model_id": self._line.model_id},
                     "text/plain": "(The analysis did not finish: the notebook's kernel stopped.)"}
        self._handle = display(shown, raw=True, display_id=True)

    def show(self, text: str, final: bool = False) -> None:
        if self._line is not None and not final:
            self._line.value = text
        elif self._handle is not None:
            self._handle.update({"text/plain": text}, raw=True)
            if self._line is not None:
                self._line.close()
                self._line = None
        elif self._terminal:
            if not final:  # a wrapped line could not be rewritten by \r: cut it to fit
                text = text[:shutil.get_terminal_size().columns - 1]
            sys.stdout.write("\r" + text.ljust(self._width) + ("\n" if final and text else ""))
            sys.stdout.flush()
            self._width = 0 if final else len(text)
        elif text and (final or text.split(STATUS_CLOCK)[0] != self._last_step):
            print(text, flush=True)
            self._last_step = text.split(STATUS_CLOCK)[0]

    def clear(self) -> None:
        """Take a terminal's status line away, so that printed text starts at column 0."""
        if self._terminal and self._width:
            sys.stdout.write("\r" + " " * self._width + "\r")
            sys.stdout.flush()
            self._width = 0


def has_widget_frontend(shell) -> bool:
    """True in a kernel that a notebook UI started (JupyterLab, Notebook 7, VS Code).

    nbconvert and nbval start kernels without a widget frontend; so does a plain
    jupyter_client. Jupyter servers set JPY_SESSION_NAME for the kernels they start.
    """
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return any(v in os.environ for v in ("JPY_SESSION_NAME", "VSCODE_PID"))


def usage() -> str:
    """Help for both magics: the cell magic's options, then the line magic's commands."""
    cell = Analyze.analyze.parser.format_help().removeprefix("::\n\n").strip()
    line = inspect.cleandoc(Analyze.analyze_line.__doc__).replace("\n", "\n  ")
    text = (f"{cell.replace('%analyze', '%%analyze', 1)}\n\nLine magic:\n  {line}\n\n"
            "Settings: %config Analyze (every default, with its current value).")
    return text.replace("``", "")  # the docstrings' reST quoting


def split_line(line: str) -> tuple[list[str], str]:
    """Option tokens and the data expression of a magic line.

    Options start with '-' and a letter outside brackets and quotes; everything
    else is the expression, so ``df[df.x > -1]`` and ``prices, holdings`` survive.
    """
    options, rest = [], []
    chunks = split_top_level(line, " ")
    takes_value = {"--out", "-o", "--timeout", "-t", "--backend", "-b", "--model", "-m",
                   "--type", "--privacy", "--context"}
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


def follow_up_line(line: str) -> str:
    """The magic line of a follow-up cell: the same data and choices, its own result.

    ``--out`` would overwrite the earlier result and ``--new`` would leave the
    conversation; the one-off flags (``--yes``, ``--insert``...) are not carried over.
    """
    options, expression = split_line(line)
    dropped = {"--out", "-o", "--new", "--insert", "--show-prompt", "--yes", "-y", "--no-cache"}
    kept, skip = [], False
    for token in options:
        if skip:
            skip = False
        elif token in dropped:
            skip = token in ("--out", "-o")
        else:
            kept.append(token)
    return " ".join(["%%analyze", expression, *kept]).strip()


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
    if _magics.prestart:  # the sandbox starts now, while the notebook is being written
        _magics.agent_for().prestart()


def unload_ipython_extension(ipython) -> None:
    global _magics
    if _magics is None:
        return
    _magics.close()
    ipython.magics_manager.magics["cell"].pop("analyze", None)
    ipython.magics_manager.magics["line"].pop("analyze", None)
    ipython.magics_manager.registry.pop("Analyze", None)
    if _magics in ipython.configurables:
        ipython.configurables.remove(_magics)
    _magics = None
