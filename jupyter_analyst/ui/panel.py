"""The approval panel: generated code is shown, checked and approved before it runs.

The magic shows the panel and returns; a kernel cannot deliver a click while a cell
is still running. From then on the buttons drive a small state machine::

    generating --> awaiting_approval --Run--> running --> done
                                                 |
                                                 +--> repairing --> awaiting_approval (the fix)
                                                 |        |
                                                 +--> failed <--+ (no fix came)
    failed --Run--> running              failed, awaiting_approval --Regenerate--> generating
    generating, awaiting_approval, repairing --Cancel--> cancelled

- ``generating``: the generator is writing code; nothing to review yet.
- ``awaiting_approval``: code, badge and findings are shown; only Run executes anything.
  When the code is a proposed fix, the diff against the failed code is shown above it.
- ``running``: the approved code runs, always with ``repair=False``: the agent never
  runs a fix by itself here.
- ``repairing``: the run failed and the generator can repair code, so it is asked for
  a fix (while the session has fixes left); the fix comes back to
  ``awaiting_approval`` and runs only when the user clicks Run.
- ``failed``: the error is shown with its line; Run (after Edit), Edit and Regenerate
  stay available. Generation errors and generators that cannot repair end here.
- ``done`` and ``cancelled`` are final: the buttons go away.

The panel is a view of an ``AnalysisSession``, which keeps the books: the proposal,
every attempt, the usage and the fixes left. ``on_result`` gets the result of every
run, so the notebook's ``_analysis`` is always the latest; its ``attempts`` and
``usage`` are the session's, so it tells the whole story, failed tries and fixes
included. The state is a trait: each change is checked against ``TRANSITIONS`` and the
buttons follow it through an observer, as ipywidgets' own widgets do.

Work runs on the agent's private event loop (``agent.submit``) and finishes there,
so the widgets are updated from that thread: trait changes are comm messages and go
to the right place from any thread, whereas ``display()`` or ``print()`` from a
callback would land in whichever cell runs at the time. Results reach the page only
as output dicts appended to an ``Output`` widget: ``rendering.display_outputs`` and
the cleaned stdout/stderr streams from the sandbox, all already allow-listed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, HasTraits, Instance, Unicode, UseEnum, observe, validate

from ..errors import AnalystError
from ..rendering import display_outputs
from ..results.outputs import cap_text
from ..safety import SafetyReport
from ..session import AnalysisSession, Proposal
from . import views
from .editor import CodeEditor, Section, StatusLine
from .slots import ResultSlots


class PanelState(str, Enum):
    GENERATING = "generating"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    REPAIRING = "repairing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


GENERATING, AWAITING_APPROVAL, RUNNING, REPAIRING, DONE, FAILED, CANCELLED = PanelState
# Where each state may go next; anything else is a bug in the panel.
TRANSITIONS: dict[PanelState, frozenset[PanelState]] = {
    GENERATING: frozenset({AWAITING_APPROVAL, FAILED, CANCELLED}),
    AWAITING_APPROVAL: frozenset({RUNNING, GENERATING, CANCELLED}),
    RUNNING: frozenset({DONE, FAILED, REPAIRING}),  # FAILED also after Stop
    REPAIRING: frozenset({AWAITING_APPROVAL, FAILED, CANCELLED}),
    FAILED: frozenset({RUNNING, GENERATING}),
    DONE: frozenset({AWAITING_APPROVAL}),  # "Edit and run again"
    CANCELLED: frozenset(),
}
BUSY = frozenset({GENERATING, RUNNING, REPAIRING})
REVIEWABLE = frozenset({AWAITING_APPROVAL, FAILED})
CANCELLABLE = frozenset({GENERATING, AWAITING_APPROVAL, REPAIRING})  # nothing is running then
TICK = 0.5  # seconds between elapsed-time updates of the status line
# Where code will run, in words, before the sandbox has started.
WHERE = {"docker": "a Docker container", "local": "the local sandbox",
         "auto": "the sandbox (Docker when available)"}


class ApprovalPanel(HasTraits):
    """Shows generated code with its safety report; runs it only when the user clicks Run."""

    state = UseEnum(PanelState, default_value=GENERATING)
    editing = Bool(False)
    code = Unicode("")  # the code as it stands: generated, a fix, or the user's edit
    report = Instance(SafetyReport, allow_none=True)  # the verdict on ``code``
    failed_code = Unicode(None, allow_none=True)  # set while the code shown is a fix for it

    def __init__(self, session: AnalysisSession, *,
                 on_result: Callable[[Any], None] | None = None,
                 slots: ResultSlots | None = None, follow_up: str | None = None):
        """``slots``: the cell's reserved outputs for results (the magic passes them);
        without them (scripts, tests) results are shown inside the panel. ``follow_up``:
        the first line of a cell that asks a follow-up (the magic's line for the same
        data); without it the panel offers none."""
        self.follow_up = follow_up
        # Clicks arrive on the kernel's thread, completions on the agent's loop thread.
        self._changed = threading.Condition(threading.RLock())
        self._future: concurrent.futures.Future | None = None
        self.session = session
        self.agent = session.agent
        self.on_result = on_result
        self.slots = slots
        self._build()
        proposal = session.proposal
        super().__init__(state=AWAITING_APPROVAL if proposal else GENERATING)
        if proposal is not None:  # generated inside the magic call (--insert)
            self.code, self.report = proposal.generated.code, proposal.safety
            self._present(proposal, 0.0)
        self._refresh()

    def _build(self) -> None:
        self.status = StatusLine()  # plain text: nothing in it is interpreted as HTML
        self.code_view = widgets.HTML()
        # Every keystroke is checked again (the validator takes a few milliseconds), so the
        # badge and the Run button always describe the code as it stands.
        self.editor = CodeEditor(on_run=self._on_run, on_notice=self._notice)
        self.editor.observe(self._on_edit, names="value")
        self.explanation = widgets.HTML()
        self.safety = widgets.HTML()
        self.diff = widgets.HTML(layout=widgets.Layout(display="none"))  # a fix vs the failed code
        self.code_box = widgets.VBox([self.code_view])
        self.details = Section(widgets.VBox([self.diff, self.code_box, self.explanation,
                                             self.safety]))
        button = self._button
        self.run_button = button("Run", "play", "success", "Run the code in the sandbox",
                                 self._on_run)
        self.edit_button = button("Edit", "edit", "", "Edit the code; it is checked again",
                                  self._on_edit_toggle)
        self.regenerate_button = button("Regenerate", "refresh", "",
                                        "Ask the generator for new code", self._on_regenerate)
        self.cancel_button = button("Cancel", "times", "", "Discard the code; nothing runs",
                                    self._on_cancel)
        self.buttons = widgets.HBox([self.run_button, self.edit_button, self.regenerate_button,
                                     self.cancel_button])
        # What a finished analysis offers: its code in the notebook, or another go.
        self.insert_button = button("Insert as cell", "plus", "",
                                    "Put the code that ran into a new cell below",
                                    self._on_insert)
        self.copy_button = button("Copy code", "copy", "", "Copy the code that ran",
                                  self._on_copy)
        self.rerun_button = button("Edit and run again", "edit", "",
                                   "Edit the code that ran; it is checked again", self._on_rerun)
        self.follow_up_button = button("Ask a follow-up", "comment", "",
                                       "A new %%analyze cell below for the same data, in the "
                                       "same conversation", self._on_follow_up)
        done = [self.insert_button, self.copy_button, self.rerun_button, self.follow_up_button]
        for action in done:
            action.layout.width = "auto"  # the labels are longer than a default button
        self.follow_up_button.layout.display = None if self.follow_up else "none"
        self.done_bar = widgets.HBox(done)
        for bar in (self.buttons, self.done_bar):
            bar.add_class("jupyter-analyst-actions")  # hidden once the kernel is gone
        self.output = widgets.Output()
        self.widget = widgets.VBox([self.status, self.details, self.buttons, self.done_bar,
                                    self.output])
        self.widget.add_class("jupyter-analyst-panel")

    @staticmethod
    def _button(label: str, icon: str, style: str, tooltip: str, handler) -> widgets.Button:
        button = widgets.Button(description=label, icon=icon, button_style=style, tooltip=tooltip)
        button.on_click(handler)
        return button

    # -- what the session knows --------------------------------------------------------
    @property
    def proposal(self) -> Proposal | None:
        return self.session.proposal

    @property
    def result(self):
        return self.session.result

    @property
    def repairs(self) -> int:
        """Fixes asked for so far (the session bounds them)."""
        return self.session.repairs_used

    # -- state ----------------------------------------------------------------------------
    @validate("state")
    def _check_transition(self, proposal) -> PanelState:
        new = PanelState(proposal["value"])
        if new != self.state and new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"approval panel: no transition from {self.state.value} "
                               f"to {new.value}")
        return new

    @observe("state", "editing", "report")
    def _on_state(self, change) -> None:
        with self._changed:
            self._refresh()
            self._changed.notify_all()

    # -- public -------------------------------------------------------------------------
    def show(self) -> None:
        """Display the panel in the current cell and start generating (called by the magic)."""
        from IPython.display import display

        display(self.widget)
        with self._changed:
            if self.proposal is None and self.state == GENERATING and self._future is None:
                self._generate(fresh=False)

    def wait(self, timeout: float | None = None) -> PanelState:
        """Block until no work is under way (or ``timeout``); returns the state.

        For scripts and tests: never call this from a button callback or the agent loop.
        """
        with self._changed:
            self._changed.wait_for(lambda: self.state not in BUSY, timeout)
            return self.state

    # -- button handlers (kernel thread) ----------------------------------------------
    def _on_run(self, _button=None) -> None:
        with self._changed:
            if self.state not in REVIEWABLE or self.proposal is None:
                return
            self.report = self.agent.validate(self.code)  # whatever is shown is what is checked
            self._show_safety()
            if not self.report.allowed:
                return
            self.editing = False
            self.state = RUNNING
            self._show_code()
            self.details.selected_index = None  # collapse: the results matter now
            self.output.outputs = ()
            # repair=False: a fix is proposed for approval (repairing), never run unasked.
            work = self.session.run(code=self.code, on_output=self._stream, repair=False)
            self._start(work, self.session.describe_activity, self._ran)

    def _on_edit_toggle(self, _button=None) -> None:
        with self._changed:
            if self.state not in REVIEWABLE or self.proposal is None:
                return
            if not self.editing:
                self.editor.value = self.code
            self.editing = not self.editing
            self._show_code()
            if self.editing:
                self.editor.focus()

    def _on_edit(self, change) -> None:
        """Every edit is validated at once: the badge, findings and Run follow the new code."""
        with self._changed:
            if not self.editing or change["new"] == self.code:
                return
            self.code = change["new"]
            self.report = self.agent.validate(self.code)
            self._show_code()  # the editor stays; a fix's diff follows the edit
            self._show_safety()

    def _on_regenerate(self, _button=None) -> None:
        with self._changed:
            if self.state not in REVIEWABLE:
                return
            self.editing = False
            self.output.outputs = ()
            self._generate(fresh=True)

    def _on_cancel(self, _button=None) -> None:
        with self._changed:
            if self.state == RUNNING:
                self.stop()
                return
            if self.state not in CANCELLABLE:
                return
            if self._future is not None:
                self._future.cancel()  # generating or asking for a fix: nothing is running
            self.editing = False
            self.state = CANCELLED
            self._show_code()
            self.details.selected_index = None
            self.status.value = ("Cancelled: nothing was run." if self.result is None else
                                 "Cancelled: no fix was run; the failed analysis stays the result.")

    def stop(self) -> bool:
        """Stop running code (the Stop button, the notebook's Interrupt): True if it was running.

        The sandbox kernel is interrupted, and restarted when the interrupt has no effect
        within a few seconds; the panel goes back to review, nothing is lost but the run.
        """
        with self._changed:
            if self.state != RUNNING or self._future is None:
                return False
            future, self._future = self._future, None
            future.cancel()
            self.state = FAILED
            self.details.selected_index = 0
            self.status.value = ("✖ Stopped: the code was interrupted in the sandbox. "
                                 "Edit it or run it again.")
            return True

    def abandon(self, why: str) -> None:
        """The notebook's kernel is going away: say so, and offer no button that cannot work."""
        with self._changed:
            if self.state in (DONE, CANCELLED):
                return
            if self._future is not None:
                self._future.cancel()
                self._future = None
            self.status.value = why
            self.buttons.layout.display = "none"

    def _on_insert(self, _button=None) -> None:
        self.editor.insert_cell(self.code, anchor=self.widget.model_id)

    def _on_follow_up(self, _button=None) -> None:
        if self.follow_up:  # the new cell is focused, its question line empty
            self.editor.insert_cell(self.follow_up + "\n", anchor=self.widget.model_id,
                                    focus=True)

    def _on_copy(self, _button=None) -> None:
        self.editor.copy(self.code)

    def _on_rerun(self, _button=None) -> None:
        with self._changed:
            if self.state != DONE:
                return
            self.editor.value = self.code
            self.editing = True
            self.state = AWAITING_APPROVAL
            self._show_code()
            self.details.selected_index = 0
            self.status.value = (f"Edit the code, then Run · it runs in {self._where()}")
            self.editor.focus()

    def _notice(self, text: str) -> None:
        self.status.value = text

    # -- work on the agent's loop -------------------------------------------------------
    def _generate(self, fresh: bool) -> None:
        self.state = GENERATING
        self.failed_code = None
        self.details.selected_index = None
        self._start(self.session.prepare(fresh=fresh), self.session.describe_activity,
                    self._generated)

    def _start(self, work: Coroutine, activity: Callable[[], str], finished: Callable) -> None:
        future = self.agent.submit(self._timed(work, activity))
        self._future = future
        future.add_done_callback(lambda f: self._finish(f, finished))

    async def _timed(self, work: Coroutine, activity: Callable[[], str]) -> tuple[Any, float]:
        """Await ``work`` while the status line shows what is happening and for how long."""
        started = time.monotonic()
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                with self._changed:  # a click may have just settled the state (Cancel)
                    if self.state in BUSY:
                        doing = activity()
                        self.status.value = (f"{doing[:1].upper()}{doing[1:]} … "
                                             f"{time.monotonic() - started:.0f} s")
                await asyncio.wait({task}, timeout=TICK)
        except asyncio.CancelledError:
            task.cancel()
            raise
        return task.result(), time.monotonic() - started

    def _finish(self, future: concurrent.futures.Future, finished: Callable) -> None:
        with self._changed:
            if future.cancelled() or future is not self._future:
                return  # Cancel already settled the state
            self._future = None
            try:
                finished(*future.result())
            except AnalystError as exc:
                self._show_failure(exc)
            except Exception as exc:  # a bug must still free the panel and say what happened
                self._show_failure(exc)
                raise

    def _generated(self, proposal: Proposal, elapsed: float) -> None:
        same = bool(self.code) and proposal.generated.code == self.code
        self.code = proposal.generated.code
        self.report = proposal.safety
        self.state = AWAITING_APPROVAL
        self._present(proposal, elapsed)
        if same and not self.failed_code:
            self.status.value = (f"{self._generator_text()} gave the same code again (it answers "
                                 "a question the same way each time). Reword the question, "
                                 "edit the code, or choose a model with --model.")

    def _ran(self, result, elapsed: float) -> None:
        if self.slots is not None:
            # The cell's own outputs: saved with the notebook, shown by nbconvert.
            self.slots.fill(self._stdout(result) + display_outputs(result, include_code=True))
            self.output.outputs = ()
        else:
            self.output.outputs = tuple(list(self.output.outputs) + display_outputs(result))
        self.code, self.report = result.code, result.safety or self.report  # what actually ran
        self._show_code()
        self._show_safety()
        where = result.backend or self.agent.sandbox_label()
        if result.success:
            self.state = DONE
            self.status.value = (f"✓ Done in {elapsed:.1f} s · {self._generator_text()} · {where}"
                                 " · the results are saved with the notebook")
        elif self.session.can_fix:
            self.details.selected_index = 0  # the failed code beside its error while asking
            self._ask_for_fix(result)
        else:
            self.state = FAILED
            self.details.selected_index = 0  # show the code next to the error
            asked = self.session.repairs_used
            limit = (f" No more fixes are proposed ({asked} asked for)."
                     if asked and self.session.generator.can_repair else "")
            self.status.value = (f"✖ The analysis failed after {elapsed:.1f} s · {where}."
                                 f"{limit} Edit the code or regenerate, then run again.")
        if self.on_result is not None:
            self.on_result(result)

    def _ask_for_fix(self, result) -> None:
        """The failed code goes back to the generator; its fix is shown for approval."""
        self.state = REPAIRING
        count = self.session.repairs_used + 1
        doing = (f"The analysis failed; asking {self._generator_text()} for a fix "
                 f"({count} of at most {self.session.options.max_repairs})")

        def fixed(proposal: Proposal, elapsed: float) -> None:
            self.failed_code = result.code  # only now: the diff needs a fix to compare with
            self._generated(proposal, elapsed)

        self._start(self.session.propose_fix(), lambda: doing, fixed)

    def _show_failure(self, exc: Exception) -> None:
        if isinstance(exc, AnalystError):
            problem, fix = exc.problem, exc.fix or ""
        else:
            problem = f"{type(exc).__name__}: {exc}"
            fix = "This is a bug in jupyter-analyst; please report it."
        stage = {GENERATING: "No code to run", REPAIRING: "No fix was proposed"}.get(
            self.state, "The analysis stopped")
        self.state = FAILED
        self.status.value = f"✖ {stage}: {problem}"
        message = {"text/html": views.message_html(problem, fix), "text/plain": f"{problem}\n{fix}"}
        self.output.outputs = self.output.outputs + (_display(message),)

    @staticmethod
    def _stdout(result) -> list[dict[str, Any]]:
        """What the code printed (it streamed into the panel while running) as an output."""
        if not result.raw_output:
            return []
        return [{"output_type": "display_data", "metadata": {},
                 "data": {"text/plain": result.raw_output}}]

    def _stream(self, output: dict[str, Any]) -> None:
        """Live stdout/stderr from the sandbox (cleaned by the agent); merged per stream name."""
        if output.get("output_type") != "stream":
            return  # plots and tables are shown with the result
        outputs = list(self.output.outputs)
        last = outputs[-1] if outputs else {}
        if last.get("output_type") == "stream" and last["name"] == output["name"]:
            outputs[-1] = {**last, "text": cap_text(last["text"] + output["text"])}
        else:
            outputs.append(dict(output))
        self.output.outputs = tuple(outputs)

    # -- view ---------------------------------------------------------------------------
    def _present(self, proposal: Proposal, elapsed: float) -> None:
        self._show_code()
        self.explanation.value = views.explanation_html(proposal.generated.explanation)
        self._show_safety()
        self.details.selected_index = 0
        cached = " (cached answer)" if proposal.generated.cached else ""
        what = "the proposed fix (changes shown above the code)" if self.failed_code else "the code"
        self.status.value = (f"Waiting for your approval: review {what}, then Run · "
                             f"{self._generator_text()}{cached} · {elapsed:.1f} s · it runs in "
                             f"{self._where()}")

    def _show_code(self) -> None:
        # The diff follows the code as it stands, edits included: it is what Run would run.
        self.diff.value = views.repair_diff(self.failed_code, self.code) if self.failed_code else ""
        self.diff.layout.display = None if self.failed_code else "none"  # no empty gap
        if self.editing:
            self.code_box.children = (self.editor,)
            return
        marked = views.findings_lines(self.report) if self.report else []
        self.code_view.value = views.code_html(self.code, marked)
        self.code_box.children = (self.code_view,)

    def _show_safety(self) -> None:
        if self.report is None:
            return
        self.safety.value = views.safety_html(self.report)
        count = len(self.report.findings)
        what = "Proposed fix" if self.failed_code else "Generated code"
        self.details.set_title(0, f"{what} · risk: {self.report.risk_level.value}"
                                  + (f" · {count} finding{'s' * (count != 1)}" if count else ""))

    def _refresh(self) -> None:
        """Enable exactly the buttons that make sense now; a busy panel takes no clicks."""
        self.details.layout.display = None if self.proposal else "none"  # nothing to review yet
        reviewable = self.state in REVIEWABLE and self.proposal is not None
        allowed = self.report is not None and self.report.allowed
        self.run_button.disabled = not (reviewable and allowed)
        self.run_button.tooltip = ("Run the code in the sandbox" if allowed or not reviewable
                                   else "High or critical risk code cannot run; edit or "
                                        "regenerate it")
        self.edit_button.disabled = not reviewable
        self.edit_button.description = "View" if self.editing else "Edit"
        self.regenerate_button.disabled = self.state not in REVIEWABLE
        running = self.state == RUNNING
        self.cancel_button.description = "Stop" if running else "Cancel"
        self.cancel_button.icon = "stop" if running else "times"
        self.cancel_button.tooltip = ("Interrupt the code running in the sandbox" if running
                                      else "Discard the code; nothing runs")
        self.cancel_button.disabled = not (running or self.state in CANCELLABLE)
        self.editor.can_run = reviewable and allowed
        self.editor.marked = views.findings_lines(self.report) if self.report else []
        self.buttons.layout.display = "none" if self.state in (DONE, CANCELLED) else None
        self.done_bar.layout.display = None if self.state == DONE else "none"
        self.status.busy = self.state in BUSY

    def _generator_text(self) -> str:
        return self.session.generator.describe()

    def _where(self) -> str:
        if self.agent.sandbox is not None:
            return self.agent.sandbox_label()
        return WHERE.get(self.agent.backend, self.agent.backend)


def _display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}
