"""The panel of ``%analyze fix``: a proposed fix of the user's own cell, for review.

It shows the diff from the cell that raised to the fix, the fix's code, explanation and
safety verdict. **Insert as cell** puts the code (as it stands, edits included) into a
new cell below for the user's own kernel, where it runs only when the user runs it;
**Edit** changes it first (every edit is checked again); **Cancel** drops it. Nothing
runs anywhere from this panel: a fix of a notebook cell is not an analysis, so the
sandbox has no part in it. Code the validator refuses (high or critical risk) is not
inserted, as it would not be run by an analysis.
"""

from __future__ import annotations

from enum import Enum

import ipywidgets as widgets

from ..session import CellFix
from . import views
from .editor import CodeEditor, StatusLine


class FixState(str, Enum):
    REVIEW = "review"
    INSERTED = "inserted"  # final: the code is in a new cell
    CANCELLED = "cancelled"  # final: nothing was inserted


class FixPanel:
    """Shows a proposed fix; inserts it as a new cell only when the user says so."""

    def __init__(self, fix: CellFix):
        if fix.proposal is None:
            raise ValueError("FixPanel needs a prepared fix (CellFix.prepare).")
        self.fix = fix
        self.state = FixState.REVIEW
        self.editing = False
        self.code = fix.proposal.generated.code
        self.report = fix.proposal.safety
        number = fix.cell.number
        self.cell_label = f"your cell In[{number}]" if number is not None else "your cell"
        self.status = StatusLine()
        self.diff = widgets.HTML()
        self.code_view = widgets.HTML()
        self.editor = CodeEditor(on_run=lambda: None, on_notice=self._notice)
        self.editor.observe(self._on_edit, names="value")
        self.code_box = widgets.VBox([self.code_view])
        self.explanation = widgets.HTML(views.explanation_html(fix.proposal.generated.explanation))
        self.safety = widgets.HTML()
        self.insert_button = self._button("Insert as cell", "plus", "success",
                                          "Put the fixed code into a new cell below; it runs "
                                          "only when you run that cell", self._on_insert)
        self.edit_button = self._button("Edit", "edit", "", "Edit the fix; it is checked again",
                                        self._on_edit_toggle)
        self.cancel_button = self._button("Cancel", "times", "", "Drop the fix; nothing changes",
                                          self._on_cancel)
        self.buttons = widgets.HBox([self.insert_button, self.edit_button, self.cancel_button])
        self.widget = widgets.VBox([self.status, self.diff, self.code_box, self.explanation,
                                    self.safety, self.buttons])
        self.widget.add_class("jupyter-analyst-panel")
        self.status.value = (f"A proposed fix of {self.cell_label} from "
                             f"{fix.generator.describe()}: review the changes, then Insert as "
                             "cell · nothing runs until you run the new cell")
        self._show()

    @staticmethod
    def _button(label: str, icon: str, style: str, tooltip: str, handler) -> widgets.Button:
        button = widgets.Button(description=label, icon=icon, button_style=style, tooltip=tooltip)
        button.layout.width = "auto"
        button.on_click(handler)
        return button

    def show(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- buttons ------------------------------------------------------------------------
    def _on_insert(self, _button=None) -> None:
        if self.state != FixState.REVIEW or not self.report.allowed:
            return
        self.editor.insert_cell(self.code, anchor=self.widget.model_id)
        self.state, self.editing = FixState.INSERTED, False
        self.status.value = ("The fixed code is in a new cell below: run it when you are "
                             "ready; nothing has run.")
        self._show()

    def _on_edit_toggle(self, _button=None) -> None:
        if self.state != FixState.REVIEW:
            return
        if not self.editing:
            self.editor.value = self.code
        self.editing = not self.editing
        self._show()
        if self.editing:
            self.editor.focus()

    def _on_edit(self, change) -> None:
        if not self.editing or change["new"] == self.code:
            return
        self.code = change["new"]
        self.report = self.fix.agent.validate(self.code)
        self._show()

    def _on_cancel(self, _button=None) -> None:
        if self.state != FixState.REVIEW:
            return
        self.state, self.editing = FixState.CANCELLED, False
        self.status.value = "Cancelled: no cell was added."
        self._show()

    def _notice(self, text: str) -> None:
        self.status.value = text

    # -- view ---------------------------------------------------------------------------
    def _show(self) -> None:
        """The diff, code and verdict of the code as it stands; the buttons that fit."""
        self.diff.value = views.repair_diff(self.fix.cell.source, self.code, self.cell_label)
        if self.editing:
            self.code_box.children = (self.editor,)
        else:
            self.code_view.value = views.code_html(self.code, views.findings_lines(self.report))
            self.code_box.children = (self.code_view,)
        self.safety.value = views.safety_html(self.report)
        self.editor.marked = views.findings_lines(self.report)
        reviewing = self.state == FixState.REVIEW
        self.insert_button.disabled = not (reviewing and self.report.allowed)
        self.insert_button.tooltip = (
            "Put the fixed code into a new cell below; it runs only when you run that cell"
            if self.report.allowed else "High or critical risk code is not inserted; edit it")
        self.edit_button.disabled = not reviewing
        self.edit_button.description = "View" if self.editing else "Edit"
        self.buttons.layout.display = None if reviewing else "none"
