"""The process stage: untrusted kernel outputs and files become parts of an AnalysisResult.

Nothing from the sandbox is trusted. Outputs pass a MIME allow-list; images are
checked by their real header and size; HTML is sanitised with nh3; text is capped;
output files are read only if they are regular files with safe names and allowed
extensions (``safefs``: no links followed, no FIFOs, devices, hard links or
sparse files). One analysis's outputs and files together stay within a total
quota (``untrusted``, where every cap is); whatever is left out is said in
``Collected.notices``. Nothing is ever unpickled or imported.
"""

from .collect import Collected, Intake, collect
from .outputs import clean_output

__all__ = ["Collected", "Intake", "clean_output", "collect"]
