"""The execute stage: a warm Jupyter kernel in a sandbox (Docker or local).

``open_sandbox`` picks the backend; both are a ``KernelSandbox`` that differ only
in their kernel provisioner.
"""

from __future__ import annotations

from ..errors import InputError, SandboxError
from .kernel import Execution, KernelSandbox
from .limits import SandboxLimits

BACKENDS = ("auto", "docker", "local")
LOCAL_LABEL = "local (reduced isolation)"

__all__ = ["BACKENDS", "Execution", "KernelSandbox", "SandboxLimits", "open_sandbox"]


def local_sandbox(limits: SandboxLimits | None = None) -> KernelSandbox:
    return KernelSandbox(
        provisioner="jupyter-analyst-local", backend="local", label=LOCAL_LABEL, limits=limits
    )


def open_sandbox(backend: str = "auto", limits: SandboxLimits | None = None
                 ) -> tuple[KernelSandbox, str | None]:
    """The sandbox for ``backend`` and, when "auto" fell back to local, a note saying why."""
    if backend not in BACKENDS:
        raise InputError(f"Unknown backend {backend!r}.", f"Use one of: {', '.join(BACKENDS)}.")
    if backend == "local":
        return local_sandbox(limits), None
    try:
        from .docker_provisioner import docker_sandbox
    except ImportError as exc:  # the docker extra is not installed
        reason = SandboxError(
            f"The Docker backend needs the docker package ({exc}).",
            "pip install 'jupyter-analyst[docker]'",
        )
    else:
        try:
            return docker_sandbox(limits), None
        except SandboxError as exc:
            reason = exc
    if backend == "docker":
        raise reason
    return local_sandbox(limits), (
        f"Docker sandbox unavailable: {reason.problem} Using the {LOCAL_LABEL} backend."
    )
