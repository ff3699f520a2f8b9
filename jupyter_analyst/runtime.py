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


class StateChanged(RuntimeError):
    """An earlier analysis left the kernel changed in a way only a restart undoes."""


# Modules whose attributes, and whose classes' attributes, analysis code must not
# replace. Those not loaded at set-up are fingerprinted when first seen.
WATCHED_MODULES = ("builtins", "jupyter_analyst.runtime", "IPython.display", "pandas",
                   "pandas.api.typing", "numpy", "numpy.linalg", "numpy.random", "matplotlib",
                   "matplotlib.pyplot", "matplotlib.figure", "matplotlib.axes", "scipy.stats",
                   "sklearn", "statsmodels.api", "seaborn", "plotly.express")
# Replaced by the kernel itself on every request (stdin forwarding), so not checked.
_KERNEL_MANAGED = {"builtins.input", "builtins.getpass"}
_baseline: dict[str, Any] = {}
_watched: dict[str, tuple[Any, dict[str, int]]] = {}  # module name -> (module, {name: id})
_classes: dict[int, tuple[type, int]] = {}  # id -> (class, fingerprint of its __dict__)


def _class_fingerprint(cls: type) -> int:
    # (copy and pickle cache __slotnames__ in the class on first use)
    return hash(tuple((k, id(v)) for k, v in vars(cls).items() if k != "__slotnames__"))


def _watch_new_modules() -> None:
    import sys

    for name in WATCHED_MODULES:
        module = sys.modules.get(name)
        if module is None or name in _watched:
            continue
        _watched[name] = (module, {k: id(v) for k, v in vars(module).items()})
        for value in list(vars(module).values()):
            if isinstance(value, type):
                for cls in value.__mro__:
                    if id(cls) not in _classes and cls is not object:
                        _classes[id(cls)] = (cls, _class_fingerprint(cls))


def _hooks() -> dict[str, Any]:
    """Everything outside the watched modules through which code could reach or alter
    a later analysis: IPython events and transformers, tracing, system hooks, import
    machinery, signal handlers, threads and processes. (Not atexit: the kernel is
    always stopped with SIGKILL, so exit callbacks never run.)"""
    import gc
    import signal
    import sys
    import threading

    from IPython import get_ipython

    shell = get_ipython()
    formatters = shell.display_formatter.formatters.values()
    children = []
    for task in os.listdir("/proc/self/task"):
        try:
            children += Path(f"/proc/self/task/{task}/children").read_text().split()
        except OSError:
            pass
    return {
        "IPython event callbacks": {e: list(map(id, c)) for e, c in shell.events.callbacks.items()},
        "IPython input or AST transformers": [
            list(map(id, shell.input_transformers_post)), list(map(id, shell.ast_transformers)),
            list(map(id, shell.input_transformer_manager.cleanup_transforms)),
            list(map(id, shell.input_transformer_manager.line_transforms))],
        "IPython display formatters": [
            (id(f), len(f.type_printers), len(f.deferred_printers),
             hash(tuple(map(id, f.type_printers.values())))) for f in formatters],
        "IPython exception handlers": (id(shell.CustomTB), tuple(map(id, shell.custom_exceptions))),
        "a trace or profile function": (sys.gettrace(), sys.getprofile(), threading.gettrace(),
                                        threading.getprofile()),
        "gc callbacks": list(map(id, gc.callbacks)),
        # (sys.excepthook is set by IPython around every cell.)
        "system hooks": tuple(id(getattr(sys, n)) for n in (
            "displayhook", "breakpointhook", "unraisablehook")) + (id(threading.excepthook),),
        "the import system": (list(map(id, sys.meta_path)), list(map(id, sys.path_hooks)),
                              list(sys.path)),
        "signal handlers or timers": (
            tuple(id(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM,
                                                   signal.SIGALRM, signal.SIGCHLD)),
            signal.getitimer(signal.ITIMER_REAL)[0] > 0),
        # Threads that run Python (a library's native pool threads do not count).
        "background threads": len(sys._current_frames()),
        "child processes": len(children),
        "other processes": _other_processes(),
    }


def _other_processes() -> int | None:
    """Processes in the kernel's own pid namespace (Docker, bubblewrap); None when it
    shares the host's, where other processes are not ours."""
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    return len(pids) if len(pids) <= 16 else None


def _scratch() -> dict[str, dict[str, tuple[int, int]]]:
    """Top-level entries of the private temporary and home directories."""
    import tempfile

    listing = {}
    for folder in {tempfile.gettempdir(), os.environ.get("HOME", "")} - {""}:
        try:
            with os.scandir(folder) as entries:
                listing[folder] = {e.name: (e.stat(follow_symlinks=False).st_mtime_ns,
                                            e.inode()) for e in entries}
        except OSError:
            listing[folder] = {}
    return listing


def _restore_settings() -> None:
    """Put back the settings analyses often change (cheaper than a restart)."""
    import sys
    import warnings

    warnings.filters[:] = _baseline["warnings"]
    if os.environ != _baseline["environ"]:  # (scikit-learn sets KMP_* when imported)
        os.environ.clear()
        os.environ.update(_baseline["environ"])
    if os.getcwd() != _baseline["cwd"]:
        os.chdir(_baseline["cwd"])
    import pandas as pd

    for key, value in _baseline["pandas"].items():
        if pd.get_option(key) != value:
            pd.set_option(key, value)
    if "matplotlib" in sys.modules:
        import matplotlib

        changed = {k: v for k, v in _baseline["rc"].items() if matplotlib.rcParams[k] != v}
        if changed:
            matplotlib.rcParams.update(changed)
    import numpy as np

    np.seterr(**_baseline["numpy_err"])
    np.set_printoptions(**_baseline["numpy_print"])


def snapshot() -> None:
    """Record the clean state of a kernel just set up, for ``state_changes``."""
    import warnings

    import matplotlib
    import numpy as np
    import pandas as pd

    _watch_new_modules()
    _baseline.update(
        hooks=_hooks(), scratch=_scratch(), warnings=list(warnings.filters), cwd=os.getcwd(),
        environ=dict(os.environ),
        pandas={k: pd.get_option(k) for k in pd._config.config._registered_options},
        rc=dict(matplotlib.rcParams), numpy_err=np.geterr(), numpy_print=np.get_printoptions())


def state_changes() -> list[str]:
    """What earlier analyses changed that must not reach the next one; files they left
    in the private temporary and home directories are removed, settings put back."""
    import shutil
    import sys

    changes = [f"{module.__name__}.{name}" for module, names in _watched.values()
               for name, ident in names.items() if id(vars(module).get(name)) != ident
               and f"{module.__name__}.{name}" not in _KERNEL_MANAGED]
    changes += [f"{cls.__module__}.{cls.__qualname__}" for cls, print_ in _classes.values()
                if _class_fingerprint(cls) != print_]
    changes += [f"sys.modules[{name!r}]" for name, (module, _) in _watched.items()
                if sys.modules.get(name) is not module]
    hooks = _hooks()
    changes += [what for what, value in _baseline["hooks"].items() if hooks[what] != value]
    for folder, entries in _scratch().items():
        before = _baseline["scratch"].get(folder, {})
        for name, stamp in entries.items():
            if name not in before:
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
                    else os.unlink(path)
            elif stamp != before[name]:
                changes.append(f"{os.path.join(folder, name)} (changed)")
    _restore_settings()
    _watch_new_modules()  # libraries imported since: fingerprinted from now on
    return changes


def bind_frames(namespace: dict[str, Any], files: dict[str, str]) -> None:
    """Start an analysis: check the kernel is as set up, forget names earlier analyses
    defined, then bind the frames.

    ``files`` maps notebook names to Parquet files. Each binding is a copy-on-write
    view, so code that changes ``df`` in place does not change what the next
    analysis sees. Only this analysis's frames stay loaded (the data directory
    holds only their files): an analysis sees the frames it was given and no
    other. Starting from a clean namespace means every analysis is checked and
    runs on its own, exactly as it would when pasted into a fresh notebook.
    """
    import gc

    import pandas as pd
    from IPython import get_ipython

    if not _baseline:  # the first analysis of this kernel: its state is the clean one
        snapshot()
    changes = state_changes()
    if changes:
        raise StateChanged("; ".join(changes[:5]) + (" ..." if len(changes) > 5 else ""))
    hidden = get_ipython().user_ns_hidden
    for name in [n for n in namespace if not n.startswith("_") and n not in hidden]:
        del namespace[name]
    namespace.update(save_metrics=save_metrics, save_table=save_table)
    wanted = set(files.values())
    if set(_frames) - wanted:
        for filename in set(_frames) - wanted:
            del _frames[filename]
        gc.collect()
    for name, filename in files.items():
        if filename not in _frames:
            _frames[filename] = pd.read_parquet(DATA_DIR / filename)
        namespace[name] = _frames[filename].copy(deep=False)


def setup_kernel() -> None:
    """Configure a fresh sandbox kernel: headless plots, copy-on-write, figure flushing,
    one thread per numeric library."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    import warnings

    import matplotlib.pyplot as plt
    import pandas as pd
    from IPython import get_ipython

    if int(pd.__version__.split(".")[0]) < 3:
        pd.options.mode.copy_on_write = True
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    shell = get_ipython()
    shell.events.register("post_run_cell", _flush_after_cell)
    shell.user_ns.update(save_metrics=save_metrics, save_table=save_table)
    # Loaded and drawn once now, so what pyplot sets up lazily is in the snapshot the
    # first analysis takes (``bind_frames``), not taken for a change by an analysis.
    plt.figure().savefig(io.BytesIO(), format="png")
    plt.close("all")


def _flush_after_cell(result: Any) -> None:
    flush_figures()
