"""The local backend's kernel provisioner: an ipykernel subprocess with OS limits.

Reduced isolation compared with Docker: the kernel runs as the user, sees the
file system, and is limited only by rlimits and (where the OS allows it) an
empty network namespace. It exists so the product works where no Docker engine
answers; the UI labels it "local (reduced isolation)".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Float, Int, Unicode

# Variables a Python kernel needs; everything else (API keys, tokens) stays out.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "VIRTUAL_ENV")


class LocalSandboxProvisioner(LocalProvisioner):
    sandbox_dir = Unicode(help="Sandbox root: data/, outputs/ and run/ live here.").tag(config=True)
    memory = Int(-1, help="Data memory limit in bytes (-1: none).").tag(config=True)
    cpu_seconds = Int(-1, help="CPU seconds for the kernel's lifetime (-1: none).").tag(config=True)
    processes = Int(-1, help="Process limit (-1: none).").tag(config=True)
    file_size = Int(-1, help="Largest file the kernel may write, bytes (-1: none).").tag(config=True)
    isolate_network = Bool(True, help="Run the kernel in an empty network namespace.").tag(
        config=True
    )
    cpus = Float(1.0, help="Accepted for symmetry with Docker; not enforceable here.").tag(
        config=True
    )

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        root = Path(self.sandbox_dir)
        kwargs["cwd"] = str(root)
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"] = sandbox_environment(root, kwargs.get("env", os.environ))
        kwargs["cmd"] = self.confinement_prefix(root) + list(kwargs["cmd"])
        return kwargs

    def confinement_prefix(self, root: Path) -> list[str]:
        prefix = [sys.executable, "-m", "jupyter_analyst.sandbox.confine"]
        prefix += ["--memory", str(self.memory), "--cpu-seconds", str(self.cpu_seconds)]
        prefix += ["--processes", str(self.processes), "--file-size", str(self.file_size)]
        prefix += ["--report", str(root / "run" / "isolation.txt")]
        if self.isolate_network:
            prefix.append("--no-network")
        return prefix + ["--"]


def sandbox_environment(root: Path, inherited: dict[str, str]) -> dict[str, str]:
    env = {k: inherited[k] for k in _PASSED_ENV if k in inherited}
    home = root / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(home / "matplotlib"),
        JUPYTER_ANALYST_DATA=str(root / "data"),
        JUPYTER_ANALYST_OUTPUTS=str(root / "outputs"),
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env
