"""What the magics read of the user's own notebook: the cell that last raised, the last cells.

Both come from the IPython shell the notebook runs in: the failing cell from the frames
of ``sys.last_traceback`` (IPython maps each cell's code name to its prompt number) and
its source from the input history; the last cells from the same history. Nothing here
runs anything in the user's kernel.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from .generation import BrokenCell
from .untrusted import terminal_safe

MAX_CELL_CHARS = 4_000  # one cell sent as context; its end is kept
MAX_CONTEXT_CHARS = 12_000  # all context cells together; the newest are kept
KEPT_TAIL = 3  # parts at the end of a traceback kept: the last frames and the exception
OUR_CELLS = ("%%analyze", "%analyze")  # the conversation already has these


def last_failure(shell: Any, privacy: str = "sample") -> BrokenCell | None:
    """The notebook cell of the most recent exception and its traceback, or None.

    None when nothing has raised yet, or when the exception did not come from a cell of
    this notebook (nothing to fix then).
    """
    etype = getattr(sys, "last_type", None)
    value = getattr(sys, "last_value", None)
    tb = getattr(sys, "last_traceback", None)
    if etype is None or value is None:
        return None
    number = _cell_number(shell, value, tb)
    if number is None:
        return None
    history = shell.history_manager.input_hist_raw
    source = history[number] if 0 < number < len(history) else ""
    if not source.strip():
        return None
    if issubclass(etype, SyntaxError):  # the line and its caret, as IPython shows them
        parts = traceback.format_exception_only(etype, value)
    else:  # the header, one part per frame, the exception
        parts = shell.InteractiveTB.structured_traceback(etype, value, tb)
    # The cell's frame and where it ended matter most; library frames between go.
    head = next((i + 1 for i, part in enumerate(parts) if "Cell In[" in part), 0)
    if len(parts) > head + KEPT_TAIL + 1:
        left_out = len(parts) - head - KEPT_TAIL
        parts = [*parts[:head], f"[... {left_out} frames left out ...]", *parts[-KEPT_TAIL:]]
    error = terminal_safe("\n".join(part.rstrip("\n") for part in parts)).strip()
    return BrokenCell(source=source, error=error, number=number, privacy=privacy)


def _cell_number(shell: Any, value: BaseException, tb: Any) -> int | None:
    """The prompt number of the outermost traceback frame that is a notebook cell."""
    numbers = getattr(shell.compile, "_filename_map", {})  # IPython's code name -> In[n]
    while tb is not None:
        number = numbers.get(tb.tb_frame.f_code.co_filename)
        if number:
            return number
        tb = tb.tb_next
    if isinstance(value, SyntaxError):  # raised while compiling: no frame of the cell
        return numbers.get(value.filename) or None
    return None


def recent_cells(shell: Any, count: int) -> list[str]:
    """The source of the last ``count`` cells before the running one, oldest first.

    ``%%analyze`` cells are left out (their questions and code are the conversation), and
    so are empty cells and cells of magics and shell commands only (``%config ...``); each
    cell and all of them together are bounded, the newest kept.
    """
    if count <= 0:
        return []
    history = shell.history_manager.input_hist_raw[1:-1]  # [0] is empty, [-1] is this cell
    kept: list[str] = []
    size = 0
    for source in reversed(history):
        source = source.strip("\n")
        lines = [line.strip() for line in source.splitlines() if line.strip()]
        if not lines or lines[0].startswith(OUR_CELLS) or all(
                line.startswith(("%", "!")) for line in lines):
            continue
        if len(source) > MAX_CELL_CHARS:
            source = "# [... the start of this cell is left out ...]\n" + source[-MAX_CELL_CHARS:]
        size += len(source)
        if size > MAX_CONTEXT_CHARS or len(kept) == count:
            break
        kept.append(source)
    return kept[::-1]
