"""The execute stage: a warm Jupyter kernel in a sandbox (Docker, local or a gateway's).

``open_sandbox`` picks the backend; each is a ``KernelSandbox`` that differs only
in its kernel provisioner. Generated code never runs unsandboxed unless the user
asks for it by name: ``backend="local-unconfined"``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from ..errors import InputError, SandboxError
from .kernel import Execution, ExecutionStatus, KernelSandbox
from .limits import SandboxLimits

BACKENDS = ("auto", "docker", "gateway", "local", "local-unconfined")
LOCAL_LABEL = "local (bubblewrap)"
UNCONFINED_LABEL = "local (unconfined: rlimits only)"
BUBBLEWRAP_FIX = ("Install bubblewrap (`sudo apt-get install bubblewrap`, or your system's "
                  "package), or Docker with `jupyter-analyst build-image`; to run generated "
                  "code as yourself with rlimits only, opt in with backend='local-unconfined'.")

__all__ = ["BACKENDS", "Execution", "ExecutionStatus", "KernelSandbox", "SandboxLimits",
           "open_sandbox"]


def bubblewrap() -> str | None:
    # Not confine's own lookup: importing confine here would load it before
    # `python -m jupyter_analyst.sandbox.confine` runs it.
    return shutil.which("bwrap")


@functools.cache
def bubblewrap_problem() -> str | None:
    """Why the local backend cannot confine a kernel with bubblewrap here, or None.

    Runs bwrap once with the namespaces the kernel gets, so a kernel without user
    namespaces (or a bwrap without setuid) is found before a kernel fails to start.
    """
    if bubblewrap() is None:
        return "bubblewrap (bwrap) is not installed."
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing: a root host needs it to drop to a plain uid."
    probe = [bubblewrap(), "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
             "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    probe += [] if as_root else ["--unshare-user", "--disable-userns"]
    try:
        done = subprocess.run(probe + ["--", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be run ({exc})."
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        hint = "" if as_root else " (are unprivileged user namespaces enabled?)"
        return f"bubblewrap cannot create the sandbox's namespaces{hint}: {detail[0]}"
    return None


def local_sandbox(limits: SandboxLimits | None = None, confined: bool = True) -> KernelSandbox:
    """The local backend: under bubblewrap, or (``confined=False``) with rlimits only."""
    if confined and (problem := bubblewrap_problem()):
        raise SandboxError(f"The local sandbox needs bubblewrap: {problem}", BUBBLEWRAP_FIX)
    return KernelSandbox(
        provisioner="jupyter-analyst-local",
        backend="local" if confined else "local-unconfined",
        label=LOCAL_LABEL if confined else UNCONFINED_LABEL,
        limits=limits,
        provisioner_config={"confinement": "bubblewrap" if confined else "none"},
    )


def open_sandbox(backend: str = "auto", limits: SandboxLimits | None = None
                 ) -> tuple[KernelSandbox, str | None]:
    """The sandbox for ``backend`` and, when "auto" did not get Docker, a note saying why.

    "auto" tries Docker, then the bubblewrap-confined local backend, and otherwise
    stops: it never falls back to an unconfined kernel.
    """
    if backend not in BACKENDS:
        raise InputError(f"Unknown backend {backend!r}.", f"Use one of: {', '.join(BACKENDS)}.")
    if backend in ("local", "local-unconfined"):
        return local_sandbox(limits, confined=backend == "local"), None
    if backend == "gateway":  # named only: "auto" never sends data to a cluster
        from .gateway import GatewaySandbox

        return GatewaySandbox(limits), None
    try:
        from .docker_provisioner import docker_sandbox
    except ImportError as exc:  # a broken installation without docker-py
        reason = SandboxError(
            f"The Docker backend needs the docker package ({exc}).",
            "pip install docker (a dependency of jupyter-analyst; reinstall it if it is missing)",
        )
    else:
        try:
            return docker_sandbox(limits), None
        except SandboxError as exc:
            reason = exc
    if backend == "docker":
        raise reason
    if problem := bubblewrap_problem():
        raise SandboxError(
            f"No sandbox is available: {reason.problem} And {problem[0].lower()}{problem[1:]}",
            f"{reason.fix or ''} Or: {BUBBLEWRAP_FIX}".strip())
    return local_sandbox(limits), (
        f"Docker sandbox unavailable: {reason.problem} Using the {LOCAL_LABEL} backend."
    )
