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
from traitlets import Bool, List, Unicode

STATIC = Path(__file__).parent / "static"


class StatusLine(anywidget.AnyWidget):
    """One line of plain text with ``role="status"``, so screen readers announce changes."""

    _esm = STATIC / "status.js"
    _css = STATIC / "editor.css"

    value = Unicode("").tag(sync=True)


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

    def insert_cell(self, code: str, anchor: str) -> None:
        """A new code cell below the one holding the widget ``anchor`` (its model id)."""
        self.send({"action": "insert_cell", "code": code, "anchor": anchor})

    def copy(self, code: str) -> None:
        self.send({"action": "copy", "code": code})

    def _message(self, _widget, content: dict[str, Any], _buffers) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        if event == "run":
            self._on_run()
        elif event == "inserted":
            self._on_notice("The code is in a new cell below." if content.get("inserted") else
                            "This notebook does not let the panel add a cell; the code was "
                            "copied to the clipboard instead." if content.get("copied") else
                            "Could not add a cell or copy: select the code in the panel and "
                            "copy it.")
        elif event == "copied":
            self._on_notice("The code was copied to the clipboard." if content.get("copied")
                            else "The browser did not allow copying; select the code and copy.")
