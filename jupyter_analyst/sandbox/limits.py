"""Resource limits for a sandbox kernel, read from arguments or the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from traitlets import Float, HasTraits, Int

from ..errors import InputError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str | int) -> int:
    """'2g', '512m', '1.5GiB' or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgtb]?)(i?b)?\s*", str(text).lower())
    if not match:
        raise InputError(
            f"Cannot read the size {text!r}.", "Write it like '2g', '512m' or a number of bytes."
        )
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class SandboxLimits:
    memory: int = 2 * 1024**3  # bytes
    cpus: float = 1.0  # CPU cores (Docker); the local backend cannot cap a share of a core
    cpu_seconds: int = 3600  # total CPU time per kernel lifetime (local backstop)
    processes: int = 256
    file_size: int = 512 * 1024**2  # largest file the code may write
    # All of outputs/ together: a tmpfs when the host runs as root, else checked by the host
    # while the code runs (kernel.py), which stops an analysis that goes over.
    outputs_size: int = 512 * 1024**2
    outputs_files: int = 4096  # files and directories in outputs/
    timeout: float = 300.0  # wall-clock seconds per analysis

    @classmethod
    def from_env(cls, **overrides) -> SandboxLimits:
        """Defaults, then SANDBOX_MEMORY_LIMIT / SANDBOX_CPU_LIMIT / SANDBOX_TIMEOUT, then
        overrides."""
        values: dict = {}
        if os.environ.get("SANDBOX_MEMORY_LIMIT"):
            values["memory"] = parse_size(os.environ["SANDBOX_MEMORY_LIMIT"])
        if os.environ.get("SANDBOX_CPU_LIMIT"):
            values["cpus"] = float(os.environ["SANDBOX_CPU_LIMIT"])
        if os.environ.get("SANDBOX_TIMEOUT"):
            values["timeout"] = float(os.environ["SANDBOX_TIMEOUT"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "memory" in values:
            values["memory"] = parse_size(values["memory"])
        return cls(**values)


class ProvisionerLimits(HasTraits):
    """The limits as a kernel provisioner's traits (both backends' share this mixin).

    A trait left at None means "the configured value": ``limits()`` then reads
    ``SandboxLimits.from_env()`` at launch, so the defaults live only above and a
    variable set after the first analysis applies to the next kernel.
    """

    memory = Int(None, allow_none=True, help="Memory limit in bytes (Docker: no swap).").tag(
        config=True)
    cpus = Float(None, allow_none=True, help="CPU cores (Docker; the local backend cannot "
                                             "cap a share of a core).").tag(config=True)
    cpu_seconds = Int(None, allow_none=True,
                      help="CPU seconds per kernel lifetime (the local backend's backstop; "
                           "Docker is bounded by the timeout and the CPU share).").tag(config=True)
    processes = Int(None, allow_none=True, help="Process and thread limit.").tag(config=True)
    file_size = Int(None, allow_none=True,
                    help="Largest file the kernel may write, bytes.").tag(config=True)
    outputs_size = Int(None, allow_none=True, help="Total bytes outputs/ may hold (a tmpfs "
                       "when the host runs as root, else the host's check).").tag(config=True)
    outputs_files = Int(None, allow_none=True,
                        help="Files and directories outputs/ may hold (same).").tag(config=True)

    def limits(self) -> SandboxLimits:
        """The limits given as traits, the configured ones for the rest."""
        given = {f.name: getattr(self, f.name) for f in fields(SandboxLimits)
                 if self.has_trait(f.name)}
        return SandboxLimits.from_env(**given)


def host_memory() -> int:
    """This machine's physical memory in bytes (what the sandboxes' limits must fit in)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
