"""The sandbox directory layout: the one place that names a sandbox's folders and files.

A sandbox root on the host holds::

    data/      the frames of the analysis that runs now (read-only to the kernel)
    outputs/   what the code writes (the only folder it may write besides run/)
    run/       the kernel's sockets and connection files, and the isolation report
    store/     every frame written for this sandbox (never shown to the kernel)
    home/      the local kernel's home (and tmp/ its temporary files, when unconfined)

The Docker backend mounts data/, outputs/ and run/ under ``/sandbox`` in the container
(``CONTAINER``), its working directory; the local backend binds them at their host
paths and starts the kernel in the root. Either way, generated code names them by
relative paths (``data/x.parquet``, ``outputs/plot.png``), which is what the validator
checks. The image recipe (``sandbox_image/Dockerfile``) creates the container's mount
points and sets ``DATA_ENV`` and ``OUTPUTS_ENV``; a test checks that it agrees.

Only the standard library, so every stage (the validator too) can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

DATA_ENV = "JUPYTER_ANALYST_DATA"  # where the in-sandbox helpers (runtime.py) find data/
OUTPUTS_ENV = "JUPYTER_ANALYST_OUTPUTS"  # ...and outputs/


@dataclass(frozen=True)
class SandboxLayout:
    """The paths of one sandbox, under ``root`` (a host ``Path`` or the container's)."""

    root: PurePath

    @property
    def data(self) -> PurePath:
        return self.root / "data"

    @property
    def outputs(self) -> PurePath:
        return self.root / "outputs"

    @property
    def run(self) -> PurePath:
        return self.root / "run"

    @property
    def store(self) -> PurePath:
        return self.root / "store"

    @property
    def home(self) -> PurePath:
        return self.root / "home"

    @property
    def tmp(self) -> PurePath:
        return self.root / "tmp"

    @property
    def kernel_socket(self) -> PurePath:
        """The ipc transport's socket path prefix (jupyter_client adds ``-<port>``)."""
        return self.run / "kernel"

    @property
    def connection_file(self) -> PurePath:
        return self.run / "kernel.json"

    @property
    def container_connection_file(self) -> PurePath:
        """The Docker kernel's copy of the connection file, with its own socket paths."""
        return self.run / "container-kernel.json"

    @property
    def owner_socket(self) -> PurePath:
        """Where the host listens while it lives; the container's watchdog watches it."""
        return self.run / "owner.sock"

    @property
    def isolation_report(self) -> PurePath:
        """What the provisioner recorded about isolation (written by the host, into run/)."""
        return self.run / "isolation.txt"

    def mounts(self) -> dict[PurePath, bool]:
        """What the kernel sees of the root: each folder, and whether it may write there."""
        return {self.data: False, self.outputs: True, self.run: True}

    def environment(self) -> dict[str, str]:
        """The variables that tell the in-sandbox helpers where data/ and outputs/ are."""
        return {DATA_ENV: str(self.data), OUTPUTS_ENV: str(self.outputs)}


def host(root: str | Path) -> SandboxLayout:
    """The layout of a sandbox root on this machine (paths are ``Path``)."""
    return SandboxLayout(Path(root))


def create(root: str | Path, notebook: bool = False) -> SandboxLayout:
    """Make the folders of a new sandbox under an existing ``root``; its layout.

    A notebook kernel's data/ is the notebook's folder and it stores no frames, so it
    gets outputs/ and run/ only.
    """
    layout = host(root)
    folders = [layout.outputs, layout.run]
    folders += [] if notebook else [layout.data, layout.store]
    for folder in folders:
        Path(folder).mkdir()
    return layout


CONTAINER = SandboxLayout(PurePosixPath("/sandbox"))  # the Docker kernel's view
