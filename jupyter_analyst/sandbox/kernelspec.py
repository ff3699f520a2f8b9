"""The sandbox kernelspec: one builder for the in-memory spec of ``KernelSandbox`` and for
the spec ``jupyter-analyst install-kernelspec`` writes, and the checks ``doctor`` runs on it.

The installed spec names no kernel provisioner: a Jupyter server filters out specs whose
provisioner it cannot load, so a server in an environment without jupyter-analyst would
hide it. Its ``argv`` instead starts ``notebook_kernel`` with this environment's
interpreter, by an absolute path checked at install time, and that process starts the
Docker sandbox kernel and relays the server's channels to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from traitlets import Instance

from ..errors import SandboxError

KERNEL_NAME = "jupyter-analyst-sandbox"
DISPLAY_NAME = "Python (jupyter-analyst sandbox)"
NOTEBOOK_KERNEL = "jupyter_analyst.sandbox.notebook_kernel"  # what the installed argv runs
# -P: the server starts it in the notebook's folder, whose files must not shadow the
# modules of this host-side process (the user's code runs in the container).
SAFE_PATH = "-P"
CHECK_TIMEOUT = 60  # seconds for an interpreter to import the notebook kernel


def kernelspec(argv: list[str], provisioner: str | None = None,
               config: dict[str, Any] | None = None) -> KernelSpec:
    """The sandbox kernelspec: started by ``argv``, or by ``provisioner`` (with ``config``)."""
    metadata = {} if provisioner is None else {
        "kernel_provisioner": {"provisioner_name": provisioner, "config": config or {}}}
    return KernelSpec(argv=argv, display_name=DISPLAY_NAME, language="python",
                      interrupt_mode="message", metadata=metadata)


class SandboxSpecManager(KernelSpecManager):
    """Serves only one in-memory spec, never the user's installed kernels."""

    spec = Instance(KernelSpec)

    def get_kernel_spec(self, kernel_name: str, *args: Any, **kwargs: Any) -> KernelSpec:
        return self.spec


def interpreter() -> str:
    """This environment's interpreter by an absolute path. Not resolved through links:
    a venv's python is a link to the base interpreter, which lacks the venv's packages."""
    return os.path.abspath(sys.executable)


def interpreter_problem(python: str) -> str | None:
    """Why ``python`` cannot run the notebook kernel, or None."""
    if not os.path.isabs(python):
        return (f"its interpreter {python!r} is not an absolute path, so it depends on the "
                "PATH of the Jupyter server")
    if not os.access(python, os.X_OK):
        return f"its interpreter {python} is missing"
    try:
        done = subprocess.run([python, SAFE_PATH, "-c", f"import {NOTEBOOK_KERNEL}"],
                              capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"its interpreter {python} cannot be run ({exc})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"its interpreter {python} cannot import jupyter_analyst ({last})"
    return None


def install(user: bool = False, prefix: str | None = None) -> str:
    """Install the notebook kernelspec; the folder it went to."""
    python = interpreter()
    if problem := interpreter_problem(python):
        raise SandboxError(f"Cannot install the kernelspec: {problem}.",
                           "Run install-kernelspec with the Python of the environment that has "
                           "jupyter-analyst (python -m jupyter_analyst.cli install-kernelspec).")
    spec = kernelspec([python, SAFE_PATH, "-m", NOTEBOOK_KERNEL, "-f", "{connection_file}"])
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "kernel.json").write_text(json.dumps(spec.to_dict(), indent=1))
        return KernelSpecManager().install_kernel_spec(
            folder, KERNEL_NAME, user=user, prefix=None if user else (prefix or sys.prefix))


def installed_problem() -> tuple[str | None, str | None]:
    """Where the kernelspec is installed (None: nowhere Jupyter looks) and what is wrong
    with it (None: a server in any environment can start it)."""
    try:
        folder = KernelSpecManager().find_kernel_specs()[KERNEL_NAME]
    except KeyError:
        return None, None
    try:
        argv = json.loads((Path(folder) / "kernel.json").read_text())["argv"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return folder, f"its kernel.json cannot be read ({exc})"
    if not isinstance(argv, list) or not argv or not isinstance(argv[0], str):
        return folder, "its argv is not a command"
    if NOTEBOOK_KERNEL not in argv:
        return folder, ("it is of an earlier version, which a server needs jupyter-analyst "
                        "installed beside it to start")
    return folder, interpreter_problem(argv[0])

