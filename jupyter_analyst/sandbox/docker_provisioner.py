"""The Docker backend's kernel provisioner: ipykernel in a locked-down container.

The host's jupyter_client talks to the kernel over the ipc transport, through Unix
sockets in the sandbox's private ``run/`` directory, which is the only writable
directory the container shares besides ``outputs/`` (``data/`` is read-only).
The container has no network, a read-only root, no capabilities, and limits on
memory (no swap), CPU, processes and file size (DESIGN section 5); as root, outputs/ is a
host tmpfs with a total size and file cap. Its init is jupyter_analyst/watchdog.py, which
ends the container once this process is gone (it watches run/owner.sock).

Sockets across a bind mount: the kernel creates them, the host connects to them.
The container runs as the host user's uid when that is not root, so the sockets
are the user's; when the host runs as root it runs as an unprivileged uid
(``SANDBOX_UID``) that is given ``run/`` and ``outputs/``, and root can connect.
It never runs as uid 0.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode

from .. import layout, safefs, untrusted
from ..errors import SandboxError
from .engine import (
    SESSION_LABEL,
    choose_runtime,
    docker_client,
    image_name,
    owner_labels,
    remove_container,
    remove_containers,
    require_image,
)
from .limits import ProvisionerLimits

SANDBOX_UID = 10001  # the image's user; used when the host runs as root
INSIDE = layout.CONTAINER  # where the container sees data/, outputs/ and run/
TMPFS = "size=256m,nr_inodes=16384,mode=1777,noexec,nosuid,nodev"
OUTPUTS_FS = "jupyter-analyst-outputs"  # the source name of outputs/ quota mounts
SHM_SIZE = "64m"
LOG_LIMITS = {"max-size": "1m", "max-file": "1"}
NOTEBOOK_OUTPUTS = "outputs"  # next to a notebook on the sandbox kernel: what it keeps
SANDBOX_LABEL = "docker"  # AnalysisResult.backend; the isolated default needs no caveat


class DockerKernelProvisioner(ProvisionerLimits, LocalProvisioner):
    """Starts the kernel in a container; lifecycle calls go to the Docker engine."""

    sandbox_dir = Unicode(help="Sandbox root with data/, outputs/ and run/ ('' = make one)."
                          ).tag(config=True)
    image = Unicode(help="Sandbox image ('' = DOCKER_IMAGE_NAME or the default).").tag(config=True)

    client: Any = None  # docker-py
    image_ref: str = ""
    root: Path | None = None
    dirs: layout.SandboxLayout | None = None  # the layout of ``root``
    notebook_dir: str | None = None  # the data directory of a notebook kernel (kernelspec use)
    container: Any = None
    container_id: str | None = None
    _own_root: str | None = None  # a sandbox dir this provisioner made (kernelspec use)
    _owner: socket.socket | None = None  # held while this process lives; see the watchdog
    _outputs_mount: weakref.finalize | None = None  # unmounts the quota tmpfs, at most once

    # -- launch -------------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.client = docker_client()
        self.image_ref = self.image or image_name()
        require_image(self.client, self.image_ref)
        self._sandbox_root(kwargs.get("cwd"))
        km = self.parent
        # A Jupyter server asks for tcp by default; the container has no network.
        km.transport = "ipc"
        km.cache_ports = False  # tcp port caching; ipc "ports" are socket file suffixes
        km.ip = str(self.dirs.kernel_socket)
        km.connection_file = str(self.dirs.connection_file)
        kwargs = await super().pre_launch(**kwargs)
        self._write_container_connection()
        _sweep_once(self.client)
        return kwargs

    def _sandbox_root(self, cwd: str | None) -> None:
        """Set the sandbox dir (``root``, ``dirs``); for a notebook kernel (no sandbox_dir)
        a private one is made, with the notebook's folder as the read-only data directory."""
        if self.sandbox_dir:
            root = Path(self.sandbox_dir)
        else:
            if self._own_root is None:
                self._own_root = tempfile.mkdtemp(prefix="jupyter-analyst-kernel-")
                layout.create(self._own_root, notebook=True)
            root = Path(self._own_root)
            self.notebook_dir = str(Path(cwd or os.getcwd()).resolve())
        self.root = root
        self.dirs = layout.host(root)

    def _write_container_connection(self) -> None:
        """The kernel's copy of the connection file, with the socket path as it sees it."""
        info = dict(self.connection_info)
        info["ip"] = str(INSIDE.kernel_socket)
        info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in info.items()}
        copy = self.dirs.container_connection_file
        safefs.write_new(copy.parent, copy.name, json.dumps(info), mode=0o600)
        self._grant()

    def _user(self) -> tuple[int, int]:
        uid = os.geteuid()
        return (SANDBOX_UID, SANDBOX_UID) if uid == 0 else (uid, os.getegid())

    def _grant(self) -> None:
        """Let the container's uid create sockets in run/ and files in outputs/."""
        uid, gid = self._user()
        dirs = self.dirs
        if os.geteuid() == 0:
            for path in (dirs.run, dirs.container_connection_file, dirs.outputs):
                os.chown(path, uid, gid)
        dirs.run.chmod(0o700)
        dirs.outputs.chmod(0o700)
        data = dirs.data
        if data.is_dir():
            data.chmod(0o755)  # read-only mount; files are written 0644

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        import docker.errors
        from docker.types import LogConfig, Ulimit

        uid, gid = self._user()
        dirs, limits = self.dirs, self.limits()
        session = self.kernel_id or uuid.uuid4().hex
        volumes = {
            str(dirs.run): {"bind": str(INSIDE.run), "mode": "rw"},
            str(dirs.data): {"bind": str(INSIDE.data), "mode": "ro"},
            str(dirs.outputs): {"bind": str(INSIDE.outputs), "mode": "rw"},
        }
        mounts, working_dir = [], str(INSIDE.root)
        if self.notebook_dir is not None:
            mounts, working_dir = self._notebook_mounts(volumes)
        self._hold_owner_socket()
        self._bound_outputs(dirs.outputs)
        runtime = choose_runtime(self.client)
        try:
            # ``cmd`` is the host's kernel command; the image has its own Python. The
            # watchdog is the container's init: it reaps zombies (fork bombs), forwards
            # signals to the kernel and ends the container when this process is gone.
            # In a thread: creating and starting a container blocks for a second or more,
            # and the loop meanwhile carries the code generation of a pre-started sandbox.
            self.container = await asyncio.to_thread(
                self.client.containers.run,
                self.image_ref,
                ["python", "-m", "jupyter_analyst.watchdog", str(INSIDE.owner_socket),
                 "--", "python", "-m", "ipykernel_launcher", "-f",
                 str(INSIDE.container_connection_file)],
                name=f"jupyter-analyst-{session[:8]}-{uuid.uuid4().hex[:6]}",
                detach=True,
                auto_remove=True,  # an ended container leaves nothing behind
                runtime=runtime,
                user=f"{uid}:{gid}",
                working_dir=working_dir,
                environment={},  # only the image's own variables; nothing from the host
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": TMPFS},
                shm_size=SHM_SIZE,  # /dev/shm stays (noexec): multiprocessing needs it
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=limits.processes,
                mem_limit=limits.memory,
                memswap_limit=limits.memory,
                nano_cpus=int(limits.cpus * 1e9),
                ulimits=[
                    Ulimit(name="fsize", soft=limits.file_size, hard=limits.file_size),
                    # An allocation that cannot fit fails at once with MemoryError (the
                    # kernel lives on); the cgroup limit is the hard stop for what is
                    # really used. RLIMIT_DATA counts reserved ranges too (thread
                    # stacks: ~300 MB at start), so it is not lower than the cgroup's.
                    Ulimit(name="data", soft=limits.memory, hard=limits.memory),
                    Ulimit(name="core", soft=0, hard=0),
                    Ulimit(name="nofile", soft=4096, hard=4096),
                ],
                log_config=LogConfig(type="json-file", config=LOG_LIMITS),
                labels={**owner_labels(), SESSION_LABEL: session},
                volumes=volumes,
                mounts=mounts,
                hostname="sandbox",
            )
        except docker.errors.APIError as exc:
            raise SandboxError(
                f"Docker could not start the sandbox container: {exc.explanation or exc}",
                "Run `jupyter-analyst doctor`; rebuild the image with "
                "`jupyter-analyst build-image` if it is damaged.",
            ) from exc
        self.container_id = self.container.id
        # run/ is the sandbox's: whatever it left under this name is replaced, not followed.
        report = dirs.isolation_report
        safefs.write_new(report.parent, report.name, "network: isolated (docker network none)\n")
        return self.connection_info

    def _notebook_mounts(self, volumes: dict[str, dict[str, str]]) -> tuple[list[Any], str]:
        """A notebook kernel's extra mounts and working directory: the notebook's folder,
        read-only, at /sandbox/data and as the working directory, so
        ``pd.read_csv('stocks.csv')`` works as in a normal kernel; the private outputs/ also
        over its outputs/, so files written there are kept (``_keep_notebook_outputs``).
        The kernel sees only what it writes there, not the notebook's own outputs/, which
        only the host writes to."""
        from docker.types import Mount

        notebook = Path(self.notebook_dir)
        kept = notebook / NOTEBOOK_OUTPUTS
        try:
            kept.mkdir(exist_ok=True)  # the mount point, and where the files are kept
        except OSError as exc:
            raise SandboxError(f"The notebook's {kept} cannot be created ({exc.strerror}).",
                               "Make the notebook's folder writable, or remove what is "
                               "there under that name.") from exc
        if kept.is_symlink() or not kept.is_dir():
            raise SandboxError(f"The notebook's {kept} is not a folder.",
                               f"Rename it: the sandbox kernel keeps its {NOTEBOOK_OUTPUTS}/ "
                               "there.")
        data = str(INSIDE.data)
        volumes.pop(str(self.dirs.data))
        volumes[str(notebook)] = {"bind": data, "mode": "ro"}
        # A second binding of the private outputs/ (volumes holds one per host path).
        outputs = Mount(f"{data}/{NOTEBOOK_OUTPUTS}", str(self.dirs.outputs), type="bind")
        return [outputs], data

    def _keep_notebook_outputs(self) -> None:
        """Copy what the notebook kernel left in outputs/ into the notebook's outputs/,
        under the same file rules as an analysis's outputs (names, types, sizes, no links)."""
        if self.notebook_dir is None or self.root is None:
            return
        try:
            left_out = safefs.copy_out(self.dirs.outputs,
                                       Path(self.notebook_dir) / NOTEBOOK_OUTPUTS,
                                       untrusted.output_name_allowed, untrusted.MAX_FILES,
                                       untrusted.MAX_FILE_BYTES, untrusted.MAX_ANALYSIS_BYTES)
        except OSError as exc:
            self.log.warning("The sandbox kernel's outputs/ were not kept: %s", exc)
            return
        for reason in left_out:
            self.log.warning("Not kept from the sandbox kernel's outputs/: %s", reason)

    def _hold_owner_socket(self) -> None:
        """Listen (never accepting: no thread) on run/owner.sock for the container's
        watchdog. The socket closes with this process, however it ends, which ends the
        container (jupyter_analyst/watchdog.py)."""
        self._close_owner()
        path = self.dirs.owner_socket
        try:
            path.unlink(missing_ok=True)  # a previous container's; unlink follows no link
        except IsADirectoryError:  # ...which made a directory in its place
            shutil.rmtree(path)
        owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        owner.bind(str(path))
        owner.listen(1)
        if os.geteuid() == 0:
            os.chown(path, *self._user(), follow_symlinks=False)
        path.chmod(0o600)
        self._owner = owner

    def _close_owner(self) -> None:
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    def _bound_outputs(self, outputs: Path) -> None:
        """Give outputs/ a total size and file-count cap: a tmpfs mounted on the host (root
        only; a user cannot mount). Without it each file is still capped by ``file_size``."""
        if os.geteuid() != 0 or self._outputs_mount is not None:
            return
        uid, gid, limits = *self._user(), self.limits()
        options = (f"size={limits.outputs_size},nr_inodes={limits.outputs_files},mode=0700,"
                   f"uid={uid},gid={gid},nosuid,nodev,noexec")
        try:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, OUTPUTS_FS,
                                      str(outputs)], capture_output=True, text=True)
            failure = mounted.stderr.strip() if mounted.returncode else None
        except OSError as exc:  # no mount(8)
            failure = str(exc)
        if failure is not None:
            self.log.warning("outputs/ has no total quota: mounting a tmpfs failed (%s)",
                             failure)
            return
        # Also when this object goes or the interpreter exits without a cleanup.
        self._outputs_mount = weakref.finalize(self, _unmount, outputs)

    def _unbound_outputs(self) -> None:
        if self._outputs_mount is not None:
            self._outputs_mount()
            self._outputs_mount = None

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self.container is not None

    async def poll(self) -> int | None:
        """None while the container runs, else its exit code."""
        import docker.errors

        if self.container is None:
            return 0
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return -1
        state = self.container.attrs["State"]
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    async def wait(self) -> int | None:
        status = await self.poll()
        while status is None:
            await asyncio.sleep(0.1)
            status = await self.poll()
        self._remove_container()
        return status

    async def send_signal(self, signum: int) -> None:
        import docker.errors

        if self.container is not None:
            try:
                self.container.kill(signal=int(signum))
            except docker.errors.APIError:  # not running any more
                pass

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        self._remove_container()
        self._close_owner()
        if not restart:
            self._keep_notebook_outputs()
            self._unbound_outputs()
        if not restart and self._own_root is not None:
            shutil.rmtree(self._own_root, ignore_errors=True)
            self._own_root = None
        await super().cleanup(restart=restart)

    def _remove_container(self) -> None:
        if self.container is not None:
            remove_container(self.container)
            self.container = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["container_id"] = self.container_id
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.container_id = provisioner_info.get("container_id")
        if self.container_id:
            self.client = docker_client()
            self.container = self.client.containers.get(self.container_id)


_swept = False


def _sweep_once(client: Any) -> None:
    """On the first launch in a process: remove containers that crashed sessions left
    behind, and make sure this process's containers go when the interpreter exits,
    even if no one shuts the kernel down."""
    global _swept
    if _swept:
        return
    _swept = True
    remove_containers(client, orphans_only=True)
    unmount_stale_outputs()
    atexit.register(_remove_own_containers)


def _remove_own_containers() -> None:
    try:
        remove_containers(docker_client(timeout=10), own_only=True)
    except SandboxError:  # the engine went away; `jupyter-analyst cleanup` can do it later
        pass


def _unmount(outputs: Path) -> None:
    # Lazy: the files a caller still has open stay readable; the memory goes with them.
    subprocess.run(["umount", "--lazy", str(outputs)], capture_output=True)
    # The sandbox directory may already have been removed around the mount point (at exit,
    # its finalizer can run first): remove what is left, if it is empty.
    for empty in (outputs, outputs.parent):
        try:
            empty.rmdir()
        except OSError:  # not empty (or gone): someone else's to remove
            break


def unmount_stale_outputs() -> int:
    """Unmount the outputs/ quota of sandboxes whose host process is gone (killed before it
    could unmount): nobody listens on their run/owner.sock any more. Returns how many."""
    if os.geteuid() != 0:
        return 0
    unmounted = 0
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.startswith(OUTPUTS_FS + " ")]
    for point in points:
        outputs = Path(point.encode().decode("unicode_escape"))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(str(layout.host(outputs.parent).owner_socket))
        except BlockingIOError:  # a full backlog: someone listens
            pass
        except OSError:  # refused or missing: the owner is gone
            _unmount(outputs)
            unmounted += 1
        finally:
            probe.close()
    return unmounted


def docker_sandbox(limits=None):
    """A KernelSandbox on the Docker backend; raises SandboxError if engine or image is missing."""
    from .kernel import KernelSandbox

    client = docker_client()
    require_image(client)
    return KernelSandbox(provisioner="jupyter-analyst-docker", backend="docker",
                         label=SANDBOX_LABEL, limits=limits)
