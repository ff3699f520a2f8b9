"""The code editor and status line of the approval panel: anywidget modules in plain JavaScript.

No npm registry is needed: ``static/editor.js`` and ``editor.css`` ship in the package
and anywidget's own front end (inside its wheel) loads them. The editor keeps its keys
(Tab indents; no keystroke reaches the notebook's shortcuts), numbers its lines like
the safety findings do, highlights while typing, runs on Ctrl/Cmd+Enter when the
verdict allows it, and leaves on Escape. It also carries the notebook actions of a
finished panel: put the code into a new cell below, or copy it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
from traitlets import Bool, List, Unicode

STATIC = Path(__file__).parent / "static"


class StatusLine(anywidget.AnyWidget):
    """One line of plain text with ``role="status"``, so screen readers announce changes.

    If the notebook's kernel restarts, the line says so by itself (``busy``: whether the
    work it describes was still under way), since the kernel can no longer tell it.
    """

    _esm = STATIC / "status.js"
    _css = STATIC / "editor.css"

    value = Unicode("").tag(sync=True)
    busy = Bool(False).tag(sync=True)


class SectionHeader(anywidget.AnyWidget):
    """A ``<button aria-expanded>``: the keyboard-reachable header of a ``Section``."""

    _esm = STATIC / "section.js"
    _css = STATIC / "editor.css"

    title = Unicode("").tag(sync=True)
    expanded = Bool(False).tag(sync=True)


class Section(widgets.VBox):
    """A collapsible section with one child, with ``Accordion``'s ``selected_index`` and
    titles. ipywidgets' own Accordion header is a bare div: no Tab stop, no state for
    screen readers."""

    def __init__(self, child: widgets.Widget):
        self.header = SectionHeader()
        self.content = widgets.VBox([child], layout=widgets.Layout(display="none"))
        super().__init__([self.header, self.content])
        self.header.observe(self._toggled, names="expanded")

    @property
    def selected_index(self) -> int | None:
        return 0 if self.header.expanded else None

    @selected_index.setter
    def selected_index(self, index: int | None) -> None:
        self.header.expanded = index == 0

    def set_title(self, _index: int, title: str) -> None:
        self.header.title = title

    def get_title(self, _index: int) -> str:
        return self.header.title

    def _toggled(self, change) -> None:
        self.content.layout.display = None if change["new"] else "none"


class CodeEditor(anywidget.AnyWidget):
    _esm = STATIC / "editor.js"
    _css = STATIC / "editor.css"

    value = Unicode("").tag(sync=True)
    marked = List([]).tag(sync=True)  # line numbers (1-based) with safety findings
    editable = Bool(True).tag(sync=True)
    can_run = Bool(False).tag(sync=True)  # Ctrl/Cmd+Enter asks to run only when True

    def __init__(self, on_run: Callable[[], None], on_notice: Callable[[str], None], **kwargs):
        super().__init__(**kwargs)
        self._on_run = on_run
        self._on_notice = on_notice  # what the front end reports back, for the status line
        self.on_msg(self._message)

    def focus(self) -> None:
        self.send({"action": "focus"})

    def insert_cell(self, code: str, anchor: str, focus: bool = False) -> None:
        """A new code cell below the one holding the widget ``anchor`` (its model id);
        ``focus``: the cursor goes to its last line, ready for typing."""
        message = {"action": "insert_cell", "code": code, "anchor": anchor}
        self.send({**message, "focus": True} if focus else message)

    def copy(self, code: str) -> None:
        self.send({"action": "copy", "code": code})

    def _message(self, _widget, content: dict[str, Any], _buffers) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        if event == "run":
            self._on_run()
        elif event == "inserted":
            self._on_notice(("A new cell is below: write the follow-up question and run it."
                             if content.get("focus") else "The code is in a new cell below.")
                            if content.get("inserted") else
                            "This notebook does not let the panel add a cell; the code was "
                            "copied to the clipboard instead." if content.get("copied") else
                            "Could not add a cell or copy: select the code in the panel and "
                            "copy it.")
        elif event == "copied":
            self._on_notice("The code was copied to the clipboard." if content.get("copied")
                            else "The browser did not allow copying; select the code and copy.")
