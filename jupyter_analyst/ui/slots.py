"""Places for a result in the cell's own outputs, reserved while the magic runs.

A widget callback cannot add outputs to a cell that has finished, but it can update
outputs that carry a ``display_id``: JupyterLab, Notebook and VS Code route such an
update to the output wherever it is, and save it with the notebook. So the magic
reserves empty outputs, and when the approved code has run the panel fills them with
the ordinary outputs of ``rendering.display_outputs`` (plots as ``image/png``, the
metrics table, insights, the folded code). A saved notebook, ``nbconvert`` and nbviewer
then show the results without any widget. Empty places render as nothing.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from IPython.display import display

SLOTS = 16  # outputs a result may take; more are folded into the last one
EMPTY = {"text/plain": ""}


class ResultSlots:
    """Reserved outputs of one cell, filled (and refilled after a re-run) from any thread."""

    def __init__(self, count: int = SLOTS):
        self._handles = [display(EMPTY, raw=True, display_id=True) for _ in range(count)]

    def fill(self, outputs: list[dict[str, Any]]) -> None:
        """Show ``outputs`` (nbformat display_data dicts) in place of whatever was there."""
        count = len(self._handles)
        if len(outputs) > count:
            outputs = outputs[:count - 1] + [_folded(outputs[count - 1:])]
        for index, handle in enumerate(self._handles):
            if index < len(outputs):
                output = outputs[index]
                handle.update(output["data"], metadata=output.get("metadata") or {}, raw=True)
            else:
                handle.update(EMPTY, raw=True)

    def clear(self) -> None:
        self.fill([])


def _folded(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several outputs as one HTML output: what does not fit in a place of its own."""
    parts, texts = [], []
    for output in outputs:
        data = output["data"]
        texts.append(str(data.get("text/plain", "")))
        image = next((m for m in ("image/png", "image/jpeg") if m in data), None)
        if image:
            base64.b64decode(data[image], validate=True)  # only checked images reach here
            parts.append(f"<img src='data:{image};base64,{data[image]}'/>")
        elif "text/html" in data:
            parts.append(data["text/html"])  # built by the render stage, values escaped
        else:
            parts.append(f"<pre>{html.escape(texts[-1])}</pre>")
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/html": "".join(parts), "text/plain": "\n".join(texts)}}
