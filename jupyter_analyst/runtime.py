"""Helpers that analysis code uses inside the sandbox kernel.

This module is the sandbox's side of the contract and depends only on the
standard library (pandas, matplotlib and IPython are imported lazily), because the
sandbox image ships it on its own. It also works in an ordinary notebook, so code
generated for the sandbox can be pasted into a normal cell and still run.

- ``save_metrics({...})`` reports named numbers (shown as the metrics table).
- ``save_table(frame, "name")`` writes ``outputs/name.csv`` and shows the table.
- Open matplotlib figures are sent as PNG after each cell, titled by their axes.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
from pathlib import Path
from typing import Any

METRICS_MIME = "application/vnd.jupyter-analyst.metrics+json"
FIGURE_METADATA_KEY = "jupyter-analyst"
OUTPUT_DIR = Path(os.environ.get("JUPYTER_ANALYST_OUTPUTS", "outputs"))
DATA_DIR = Path(os.environ.get("JUPYTER_ANALYST_DATA", "data"))
MAX_FIGURES_PER_CELL = 20

_frames: dict[str, Any] = {}  # fingerprint -> DataFrame, loaded once per kernel


def json_safe(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars and containers.

    NaN and infinities become the strings "NaN", "Infinity" and "-Infinity", so they
    survive JSON and stay visible instead of silently turning into null.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalar
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def save_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Report named results (numbers, short strings); returns them JSON-safe."""
    from IPython.display import display

    if not isinstance(metrics, dict):
        raise TypeError("save_metrics expects a dict such as {'mean': 1.5}")
    clean = json_safe(metrics)
    text = "\n".join(f"{k}: {v}" for k, v in clean.items())
    display({METRICS_MIME: clean, "text/plain": text}, raw=True)
    return clean


def save_table(frame: Any, name: str = "table") -> Path:
    """Write a DataFrame (or Series) to ``outputs/<name>.csv`` and display it."""
    from IPython.display import display

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "table"
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / f"{safe}.csv"
    frame.to_csv(path)
    display(frame)
    return path


def flush_figures() -> None:
    """Send every open matplotlib figure as a titled PNG and close it."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        return
    import matplotlib.pyplot as plt
    from IPython.display import display

    for number in plt.get_fignums()[:MAX_FIGURES_PER_CELL]:
        figure = plt.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        display(
            {"image/png": data, "text/plain": f"<Figure: {_figure_title(figure)}>"},
            metadata={FIGURE_METADATA_KEY: {"title": _figure_title(figure)}},
            raw=True,
        )
    plt.close("all")


def _figure_title(figure: Any) -> str:
    if figure._suptitle is not None and figure._suptitle.get_text():
        return figure._suptitle.get_text()
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    return "; ".join(titles[:3]) or f"Figure {figure.number}"


def bind_frames(namespace: dict[str, Any], files: dict[str, str]) -> None:
    """Start an analysis: forget names earlier analyses defined, then bind the frames.

    ``files`` maps notebook names to Parquet files; each file is read once per
    kernel. Each binding is a copy-on-write view, so code that changes ``df`` in
    place does not change what the next analysis sees. Starting from a clean
    namespace means every analysis is checked and runs on its own, exactly as
    it would when pasted into a fresh notebook.
    """
    import pandas as pd
    from IPython import get_ipython

    hidden = get_ipython().user_ns_hidden
    for name in [n for n in namespace if not n.startswith("_") and n not in hidden]:
        del namespace[name]
    namespace.update(save_metrics=save_metrics, save_table=save_table)
    for name, filename in files.items():
        if filename not in _frames:
            _frames[filename] = pd.read_parquet(DATA_DIR / filename)
        namespace[name] = _frames[filename].copy(deep=False)


def setup_kernel() -> None:
    """Configure a fresh sandbox kernel: headless plots, copy-on-write, figure flushing."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import warnings

    import pandas as pd
    from IPython import get_ipython

    if int(pd.__version__.split(".")[0]) < 3:
        pd.options.mode.copy_on_write = True
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    shell = get_ipython()
    shell.events.register("post_run_cell", lambda result: flush_figures())
    shell.user_ns.update(save_metrics=save_metrics, save_table=save_table)

