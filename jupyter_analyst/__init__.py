"""jupyter-analyst: ask questions about DataFrames; reviewed code runs in a sandboxed kernel.

In a notebook: ``%load_ext jupyter_analyst`` then ``%%analyze df`` with a question.
From Python: ``PythonAnalysisAgent``, ``quick_analyze``.
"""

from .agent import PythonAnalysisAgent, quick_analyze
from .errors import AnalystError
from .result import AnalysisResult, Attempt
from .session import AnalysisSession, Proposal, RequestOptions, Thread

__all__ = [
    "AnalysisResult",
    "AnalysisSession",
    "AnalystError",
    "Attempt",
    "Proposal",
    "PythonAnalysisAgent",
    "RequestOptions",
    "Thread",
    "quick_analyze",
    "load_ipython_extension",
    "unload_ipython_extension",
]
__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .magic import unload_ipython_extension as unload

    unload(ipython)
