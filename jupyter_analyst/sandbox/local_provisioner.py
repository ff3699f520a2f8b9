"""The local backend's kernel provisioner: an ipykernel subprocess under bubblewrap.

The kernel runs in the host's Python (same interpreter and venv, so the same
library versions), confined by ``confine``: under bubblewrap it sees only the
read-only system and Python directories and the sandbox root's data/ (read-only),
outputs/ and run/, has no network, no home and its own pids. With
``confinement="none"`` (the explicit opt-in of backend="local-unconfined") it runs
as the user with rlimits and, where the OS allows it, an empty network namespace.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Enum, Unicode

from .. import layout
from . import confine
from .limits import ProvisionerLimits

# Variables a Python kernel needs; everything else (API keys, tokens) stays out.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "VIRTUAL_ENV")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # jupyter_analyst (editable installs)


class LocalSandboxProvisioner(ProvisionerLimits, LocalProvisioner):
    sandbox_dir = Unicode(help="Sandbox root: data/, outputs/ and run/ live here.").tag(config=True)
    confinement = Enum(["bubblewrap", "none"], "bubblewrap",
                       help="bubblewrap, or none (rlimits only: an explicit opt-in).").tag(
        config=True)
    isolate_network = Bool(True, help="Without bubblewrap: an empty network namespace.").tag(
        config=True
    )

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        root = Path(self.sandbox_dir)
        kwargs["cwd"] = str(root)
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"] = sandbox_environment(root, kwargs.get("env", os.environ),
                                            private_tmp=self.confinement == "bubblewrap")
        # The interpreter by a normalised path: "bench/../.venv" does not exist in the
        # sandbox, where bench/ is not mounted.
        kernel = [os.path.abspath(kwargs["cmd"][0]), *kwargs["cmd"][1:]]
        kwargs["cmd"] = self.confinement_prefix(root) + kernel
        if self.confinement == "bubblewrap" and os.geteuid() == 0:
            self._grant(root)
        return kwargs

    def confinement_prefix(self, root: Path) -> list[str]:
        limits = self.limits()
        prefix = [sys.executable, "-m", "jupyter_analyst.sandbox.confine"]
        prefix += ["--memory", str(limits.memory), "--cpu-seconds", str(limits.cpu_seconds)]
        prefix += ["--processes", str(limits.processes), "--file-size", str(limits.file_size)]
        dirs = layout.host(root)
        prefix += ["--report", str(dirs.isolation_report)]
        if self.confinement == "bubblewrap":
            prefix += ["--bubblewrap", str(root), "--home", str(dirs.home)]
            for path in python_paths():
                prefix += ["--ro", path]
        elif self.isolate_network:
            prefix.append("--no-network")
        return prefix + ["--"]

    def _grant(self, root: Path) -> None:
        """A root host runs the kernel as confine.SANDBOX_UID: give it run/ (its sockets,
        the connection file) and outputs/. Links are changed, never followed."""
        dirs = layout.host(root)
        for path in (dirs.run, dirs.outputs, Path(self.parent.connection_file)):
            if path.exists() or path.is_symlink():
                os.chown(path, confine.SANDBOX_UID, confine.SANDBOX_UID, follow_symlinks=False)


def python_paths() -> list[str]:
    """Directories the kernel's Python needs, read-only: the interpreter's and the venv's
    prefixes, site-packages and this package (which an editable install keeps elsewhere)."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  str(PACKAGE_DIR), *site.getsitepackages()}
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        candidates.add(site.getusersitepackages())
    paths = sorted({os.path.abspath(p) for p in candidates if os.path.isdir(p)}, key=len)
    kept: list[str] = []
    for path in paths:  # drop what a shorter path (or the system's /usr) already covers
        if not any(path == k or path.startswith(k + os.sep) for k in kept + ["/usr"]):
            kept.append(path)
    return kept


def sandbox_environment(root: Path, inherited: dict[str, str],
                        private_tmp: bool = False) -> dict[str, str]:
    env = {k: inherited[k] for k in _PASSED_ENV if k in inherited}
    dirs = layout.host(root)
    home = dirs.home
    home.mkdir(exist_ok=True)
    tmp = Path("/tmp") if private_tmp else dirs.tmp  # bubblewrap's /tmp is private
    tmp.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(home / "matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        **dirs.environment(),
    )
    return env
