"""jupyter-analyst: ask questions about DataFrames; reviewed code runs in a sandboxed kernel."""

from .result import AnalysisResult, Attempt

__all__ = ["AnalysisResult", "Attempt"]
__version__ = "0.1.0"
