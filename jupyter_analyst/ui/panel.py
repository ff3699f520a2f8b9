"""The approval panel: generated code is shown, checked and approved before it runs.

The magic shows the panel and returns; a kernel cannot deliver a click while a cell
is still running. From then on the buttons drive a small state machine::

    generating -> awaiting_approval -> running -> done | failed
         |               |                          failed -> running | generating
         +---------------+--> cancelled

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
from typing import Any

import ipywidgets as widgets

from ..agent import Proposal, PythonAnalysisAgent
from ..errors import AnalystError
from ..rendering import display_outputs
from ..results.outputs import cap_text
from ..safety import SafetyReport
from . import views

GENERATING = "generating"
AWAITING_APPROVAL = "awaiting_approval"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
BUSY = (GENERATING, RUNNING)
TICK = 0.5  # seconds between elapsed-time updates of the status line


class ApprovalPanel:
    """Shows generated code with its safety report; runs it only when the user clicks Run."""

    def __init__(self, agent: PythonAnalysisAgent, question: str, frames: dict, *,
                 analysis_type: str | None = None, timeout: float | None = None,
                 on_result: Callable[[Any], None] | None = None,
                 proposal: Proposal | None = None):
        self.agent = agent
        self.question = question
        self.frames = frames
        self.analysis_type = analysis_type
        self.timeout = timeout
        self.on_result = on_result
        self.proposal = proposal
        self.result = None
        self.state = GENERATING if proposal is None else AWAITING_APPROVAL
        self.code = proposal.generated.code if proposal else ""
        self.report: SafetyReport | None = proposal.safety if proposal else None
        self.editing = False
        self._future: concurrent.futures.Future | None = None
        # Clicks arrive on the kernel's thread, completions on the agent's loop thread.
        self._changed = threading.Condition(threading.RLock())

        self.status = widgets.Label()  # plain text: nothing in it is interpreted as HTML
        self.status.add_class("jupyter-analyst-status")
        self.code_view = widgets.HTML()
        # Every keystroke is checked again (the validator takes a few milliseconds), so the
        # badge and the Run button always describe the code as it stands.
        self.editor = widgets.Textarea(layout=widgets.Layout(width="100%", height="16em"),
                                       continuous_update=True)
        self.editor.add_class("jupyter-analyst-editor")
        self.editor.observe(self._on_edit, names="value")
        self.explanation = widgets.HTML()
        self.safety = widgets.HTML()
        self.code_box = widgets.VBox([self.code_view])
        self.details = widgets.Accordion(
            children=[widgets.VBox([self.code_box, self.explanation, self.safety])])
        button = self._button
        self.run_button = button("Run", "play", "success", "Run the code in the sandbox", self._on_run)
        self.edit_button = button("Edit", "edit", "", "Edit the code; it is checked again", self._on_edit_toggle)
        self.regenerate_button = button("Regenerate", "refresh", "", "Ask the generator for new code",
                                        self._on_regenerate)
        self.cancel_button = button("Cancel", "times", "", "Discard the code; nothing runs", self._on_cancel)
        self.output = widgets.Output()
        self.buttons = widgets.HBox([self.run_button, self.edit_button, self.regenerate_button,
                                     self.cancel_button])
        self.widget = widgets.VBox([self.status, self.details, self.buttons, self.output])
        self.widget.add_class("jupyter-analyst-panel")
        if proposal is not None:
            self._present(proposal, 0.0)
        self._refresh()

    @staticmethod
    def _button(label: str, icon: str, style: str, tooltip: str, handler) -> widgets.Button:
        button = widgets.Button(description=label, icon=icon, button_style=style, tooltip=tooltip)
        button.on_click(handler)
        return button

    # -- public -------------------------------------------------------------------------
    def show(self) -> None:
        """Display the panel in the current cell and start generating (called by the magic)."""
        from IPython.display import display

        display(self.widget)
        with self._changed:
            if self.proposal is None and self.state == GENERATING and self._future is None:
                self._generate(fresh=False)

    def wait(self, timeout: float | None = None) -> str:
        """Block until no work is under way (or ``timeout``); returns the state.

        For scripts and tests: never call this from a button callback or the agent loop.
        """
        with self._changed:
            self._changed.wait_for(lambda: self.state not in BUSY, timeout)
            return self.state

    # -- button handlers (kernel thread) ----------------------------------------------
    def _on_run(self, _button=None) -> None:
        with self._changed:
            if self.state not in (AWAITING_APPROVAL, FAILED) or self.proposal is None:
                return
            self.report = self.agent.validate(self.code)  # whatever is shown is what is checked
            self._show_safety()
            if not self.report.allowed:
                self._refresh()
                return
            self._set_state(RUNNING)
            self.editing = False
            self._show_code()
            self.details.selected_index = None  # collapse: the results matter now
            self.output.outputs = ()
            work = self.agent.run(self.proposal, code=self.code, timeout=self.timeout,
                                  on_output=self._stream)
            self._start(work, self.agent.activity, self._ran)

    def _on_edit_toggle(self, _button=None) -> None:
        with self._changed:
            if self.state not in (AWAITING_APPROVAL, FAILED) or self.proposal is None:
                return
            self.editing = not self.editing
            if self.editing:
                self.editor.value = self.code
            self._show_code()
            self._refresh()

    def _on_edit(self, change) -> None:
        """Every edit is validated at once: the badge, findings and Run follow the new code."""
        with self._changed:
            if not self.editing or change["new"] == self.code:
                return
            self.code = change["new"]
            self.report = self.agent.validate(self.code)
            self._show_safety()
            self._refresh()

    def _on_regenerate(self, _button=None) -> None:
        with self._changed:
            if self.state not in (AWAITING_APPROVAL, FAILED):
                return
            self.editing = False
            self.output.outputs = ()
            self._generate(fresh=True)

    def _on_cancel(self, _button=None) -> None:
        with self._changed:
            if self.state not in (GENERATING, AWAITING_APPROVAL):
                return
            if self._future is not None:
                self._future.cancel()  # generation only: nothing has run
            self._set_state(CANCELLED)
            self.editing = False
            self._show_code()
            self.details.selected_index = None
            self.status.value = "Cancelled: nothing was run."
            self._refresh()

    # -- work on the agent's loop -------------------------------------------------------
    def _generate(self, fresh: bool) -> None:
        self._set_state(GENERATING)
        self.details.selected_index = None
        work = self.agent.prepare(self.question, self.frames, self.analysis_type, fresh=fresh)
        doing = f"generating code with {self.agent.generator.describe()}"
        self._start(work, lambda: doing, self._generated)

    def _start(self, work: Coroutine, activity: Callable[[], str], finished: Callable) -> None:
        self._refresh()
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
                        self.status.value = f"⏳ {activity()} · {time.monotonic() - started:.0f} s"
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
        self.proposal = proposal
        self.code = proposal.generated.code
        self.report = proposal.safety
        self._set_state(AWAITING_APPROVAL)
        self._present(proposal, elapsed)
        self._refresh()

    def _ran(self, result, elapsed: float) -> None:
        self.result = result
        outputs = list(self.output.outputs)
        if len(result.attempts) > 1:
            html_diff, text_diff = views.repair_diff(result.attempts[0].code, result.code)
            outputs.append(_display({"text/html": html_diff, "text/plain": text_diff}))
        self.output.outputs = tuple(outputs + display_outputs(result))
        self.code, self.report = result.code, result.safety or self.report  # what actually ran
        self._show_code()
        self._show_safety()
        where = result.backend or self.agent.sandbox_label()
        if result.success:
            self._set_state(DONE)
            self.status.value = f"✓ Done in {elapsed:.1f} s · {self._generator_text()} · {where}"
        else:
            self._set_state(FAILED)
            self.details.selected_index = 0  # show the code next to the error
            self.status.value = (f"✖ The analysis failed after {elapsed:.1f} s · {where}. "
                                 "Edit the code or regenerate, then run again.")
        self._refresh()
        if self.on_result is not None:
            self.on_result(result)

    def _show_failure(self, exc: Exception) -> None:
        if isinstance(exc, AnalystError):
            problem, fix = exc.problem, exc.fix or ""
        else:
            problem = f"{type(exc).__name__}: {exc}"
            fix = "This is a bug in jupyter-analyst; please report it."
        stage = "No code to run" if self.state == GENERATING else "The analysis stopped"
        self._set_state(FAILED)
        self.status.value = f"✖ {stage}: {problem}"
        self.output.outputs = self.output.outputs + (
            _display({"text/html": views.message_html(problem, fix), "text/plain": f"{problem}\n{fix}"}),)
        self._refresh()

    def _stream(self, output: dict[str, Any]) -> None:
        """Live stdout/stderr from the sandbox (cleaned by the agent); merged per stream name."""
        if output.get("output_type") != "stream":
            return  # plots and tables are shown with the result
        outputs = list(self.output.outputs)
        if outputs and outputs[-1].get("output_type") == "stream" and outputs[-1]["name"] == output["name"]:
            merged = cap_text(outputs[-1]["text"] + output["text"])
            outputs[-1] = {**outputs[-1], "text": merged}
        else:
            outputs.append(dict(output))
        self.output.outputs = tuple(outputs)

    # -- view ---------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self._changed.notify_all()

    def _present(self, proposal: Proposal, elapsed: float) -> None:
        self._show_code()
        self.explanation.value = views.explanation_html(proposal.generated.explanation)
        self._show_safety()
        self.details.selected_index = 0
        cached = " (cached answer)" if proposal.generated.cached else ""
        self.status.value = (f"Review the code, then Run · {self._generator_text()}{cached} · "
                             f"{elapsed:.1f} s · runs in: {self.agent.sandbox_label()}")

    def _show_code(self) -> None:
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
        self.details.set_title(0, f"Generated code · risk: {self.report.risk_level.value}"
                                  + (f" · {count} finding{'s' * (count != 1)}" if count else ""))

    def _refresh(self) -> None:
        """Enable exactly the buttons that make sense now; a busy panel takes no clicks."""
        self.details.layout.display = None if self.proposal else "none"  # nothing to review yet
        reviewable = self.state in (AWAITING_APPROVAL, FAILED) and self.proposal is not None
        allowed = self.report is not None and self.report.allowed
        self.run_button.disabled = not (reviewable and allowed)
        self.run_button.tooltip = ("Run the code in the sandbox" if allowed or not reviewable
                                   else "High or critical risk code cannot run; edit or regenerate it")
        self.edit_button.disabled = not reviewable
        self.edit_button.description = "View" if self.editing else "Edit"
        self.regenerate_button.disabled = self.state not in (AWAITING_APPROVAL, FAILED)
        self.cancel_button.disabled = self.state not in (GENERATING, AWAITING_APPROVAL)
        self.buttons.layout.display = "none" if self.state in (DONE, CANCELLED) else None  # final

    def _generator_text(self) -> str:
        return self.agent.generator.describe()


def _display(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}
