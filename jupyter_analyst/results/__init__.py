"""The process stage: untrusted kernel outputs and files become parts of an AnalysisResult.

Nothing from the sandbox is trusted. Outputs pass a MIME allow-list; images are
checked by their real header and size; HTML is sanitised with nh3; text is capped;
output files are read only if they are regular files with safe names and allowed
extensions, opened without following links or blocking on FIFOs. Nothing is
ever unpickled or imported.
"""

from .outputs import clean_output
from .collect import Collected, collect

__all__ = ["Collected", "clean_output", "collect"]
