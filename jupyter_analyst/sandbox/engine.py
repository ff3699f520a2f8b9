"""The Docker engine as the sandbox sees it: connecting, the image name, orphans.

Shared by the image builder, the Docker kernel provisioner, ``doctor`` and
``cleanup``, so each says the same thing when the engine is down.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import SandboxError

DEFAULT_IMAGE = "jupyter-analyst-sandbox:latest"
# Every sandbox container carries these labels, so a crashed session's containers
# can be found and removed later (`jupyter-analyst cleanup`).
LABEL = "jupyter-analyst.sandbox"
SESSION_LABEL = "jupyter-analyst.session"
PID_LABEL = "jupyter-analyst.host-pid"  # the host process that owns the container
HOST_LABEL = "jupyter-analyst.host"  # ...and its machine: pids mean nothing elsewhere
RECIPE_LABEL = "jupyter-analyst.recipe"  # on the image: hash of what it was built from
RUNTIME_LABEL = "jupyter-analyst.runtime"  # on the image: hash of its helper module
RUNTIME_MODULE = Path(__file__).resolve().parent.parent / "runtime.py"
# The container's init process: it ends the container when the host process is gone.
WATCHDOG_MODULE = Path(__file__).resolve().parent.parent / "watchdog.py"
IN_IMAGE_MODULES = (RUNTIME_MODULE, WATCHDOG_MODULE)  # copied into the image, hashed as one
# Which OCI runtime runs the container: unset = the engine's default (runc as a rule);
# a runtime name the engine has (`runsc` for gVisor); `auto` = runsc when the engine has it.
RUNTIME_ENV = "SANDBOX_RUNTIME"
GVISOR = "runsc"


def runtime_digest() -> str:
    """Hash of this installation's in-sandbox modules, which the image must match."""
    digest = hashlib.sha256()
    for module in IN_IMAGE_MODULES:
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def image_name() -> str:
    return os.environ.get("DOCKER_IMAGE_NAME") or DEFAULT_IMAGE


def docker_client(timeout: float = 60) -> Any:
    """A connected docker-py client, or a SandboxError that says how to get one."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxError(
            f"The Docker backend needs the docker package ({exc}).",
            "pip install docker (a dependency of jupyter-analyst; reinstall it if it is missing)",
        ) from exc
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # docker-py raises DockerException, requests and OS errors here
        raise SandboxError(
            f"The Docker engine is not reachable ({_first_line(exc)}).",
            "Start Docker (e.g. `sudo systemctl start docker`), check that your user may use it "
            "(`docker info`), or use backend='local'.",
        ) from exc
    return client


def engine_runtimes(client: Any) -> tuple[list[str], str]:
    """The OCI runtimes the engine offers, and its default one."""
    info = client.info()
    return sorted(info.get("Runtimes") or {}), info.get("DefaultRuntime") or "runc"


def choose_runtime(client: Any) -> str | None:
    """The runtime to ask for (None: the engine's default), from SANDBOX_RUNTIME."""
    wanted = os.environ.get(RUNTIME_ENV, "").strip()
    if not wanted:
        return None
    offered, _ = engine_runtimes(client)
    if wanted == "auto":
        return GVISOR if GVISOR in offered else None
    if wanted not in offered:
        raise SandboxError(
            f"{RUNTIME_ENV}={wanted} names a runtime the Docker engine does not have "
            f"(it has: {', '.join(offered) or 'none listed'}).",
            f"Register it in /etc/docker/daemon.json (docs/sandbox.md, gVisor), or unset "
            f"{RUNTIME_ENV} to use the engine's default.",
        )
    return wanted


def find_image(client: Any, reference: str) -> Any:
    """The image, or None when the engine does not have it."""
    import docker.errors

    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None


def require_image(client: Any, name: str | None = None) -> Any:
    """The sandbox image, or a SandboxError telling how to build it."""
    name = name or image_name()
    image = find_image(client, name)
    if image is None:
        raise SandboxError(
            f"The sandbox image {name} is not present in the Docker engine.",
            "Build it once with `jupyter-analyst build-image` (or "
            "PythonAnalysisAgent(build_sandbox=True)); it works without a registry.",
        )
    built_with = image.labels.get(RUNTIME_LABEL)
    if built_with is not None and built_with != runtime_digest():
        # The kernel would run other helper code than this host expects.
        raise SandboxError(
            f"The sandbox image {name} was built for another version of jupyter-analyst.",
            "Rebuild it with `jupyter-analyst build-image` (a minute when only the helper "
            "module changed).",
        )
    return image


def sandbox_containers(client: Any, session: str | None = None) -> list[Any]:
    """Containers started by jupyter-analyst (all sessions, or one), running or not."""
    label = f"{SESSION_LABEL}={session}" if session else LABEL
    return client.containers.list(all=True, filters={"label": label})


def owner_labels() -> dict[str, str]:
    """Labels naming this process as the owner of a container."""
    return {LABEL: "1", PID_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname()}


def is_orphan(container: Any) -> bool:
    """True when the host process that started the container is gone (on this machine)."""
    if container.labels.get(HOST_LABEL) != socket.gethostname():
        return False  # started from another machine sharing the engine: cannot tell
    try:
        pid = int(container.labels.get(PID_LABEL, ""))
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def remove_containers(client: Any, session: str | None = None, orphans_only: bool = False,
                      own_only: bool = False) -> int:
    """Force-remove sandbox containers (a session's, all, orphans or this process's).

    Returns how many were removed.
    """

    removed = 0
    own = owner_labels()
    for container in sandbox_containers(client, session):
        if orphans_only and not is_orphan(container):
            continue
        if own_only and any(container.labels.get(k) != v for k, v in own.items()):
            continue
        removed += remove_container(container)
    return removed


def remove_container(container: Any, settle: float = 30.0) -> bool:
    """Force-remove one container; True if this call removed it.

    A container the engine is already removing (its watchdog ended it, or another cleanup got
    there first) answers 409; we wait until it is gone, so that callers can rely on it.
    """
    import docker.errors

    try:
        container.remove(force=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        try:
            container.reload()
        except docker.errors.NotFound:
            return False
        time.sleep(0.1)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
