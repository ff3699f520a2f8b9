"""Start the local kernel confined: under bubblewrap, or (opted in) with rlimits only.

The local backend uses this as a prefix to the kernel command, so the limits are
applied in the kernel's own process tree before it execs, instead of in a
``preexec_fn`` of a threaded host process:

    python -m jupyter_analyst.sandbox.confine --memory 2147483648 ... \
        --bubblewrap ROOT --ro /usr ... -- python -m ipykernel_launcher -f run/kernel.json

Under ``--bubblewrap`` the kernel gets a new mount namespace holding only the
read-only system and Python directories, ``data/`` read-only, ``outputs/`` and
``run/`` writable (at the same paths as on the host, so the connection file's
socket paths stay valid) and a private size-limited ``/tmp`` and home; new user,
pid, network, ipc, uts and cgroup namespaces; a new session (no TIOCSTI into the
user's terminal); no capabilities. The kernel never runs as root: a root host's
kernel runs as ``SANDBOX_UID``, another user's as that user.

Writes what was enforced to the file named by ``--report`` so the host can label
the sandbox honestly.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import sys
from pathlib import Path

from .. import layout

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SANDBOX_UID = 65534  # "nobody": what a root host runs the kernel as
TMP_SIZE = 256 * 1024**2  # private /tmp and home (memory-backed, like Docker's tmpfs)
SHM_SIZE = 64 * 1024**2
# The system directories a Python kernel needs; /etc is not among them (it holds
# secrets readable by the user), only the few files below.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/etc/alternatives",
             "/etc/ssl/certs", "/etc/mime.types")


def bubblewrap() -> str | None:
    return shutil.which("bwrap")


def isolate_network() -> str:
    """Move this process into a new, empty network namespace (loopback only, down).

    Root can unshare the network directly; other users first enter a user
    namespace that maps only their own uid and gid, which unprivileged users may
    do on most Linux systems. Unix-socket (ipc) kernel channels keep working,
    because they live in the file system, not in the network namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        return f"shared ({os.strerror(ctypes.get_errno())})"
    if uid != 0:
        for path, text in (
            ("/proc/self/setgroups", "deny"),
            ("/proc/self/uid_map", f"{uid} {uid} 1"),
            ("/proc/self/gid_map", f"{gid} {gid} 1"),
        ):
            with open(path, "w") as handle:
                handle.write(text)
    return "isolated"


def tasks_of_user(uid: int) -> int:
    """Threads ``uid`` already runs (RLIMIT_NPROC counts them all)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1"))
    return count


def apply_limits(memory: int, cpu_seconds: int, processes: int, file_size: int,
                 uid: int) -> None:
    if processes >= 0:
        # The limit is per user, so it is given as headroom above what already runs.
        processes += tasks_of_user(uid)
    # RLIMIT_DATA, not RLIMIT_AS: allocators such as pyarrow's reserve large
    # address ranges they never touch, which RLIMIT_AS would count.
    for limit, value in (
        (resource.RLIMIT_DATA, memory),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_NPROC, processes),
        (resource.RLIMIT_FSIZE, file_size),
        (resource.RLIMIT_CORE, 0),
    ):
        if value is not None and value >= 0:
            resource.setrlimit(limit, (value, value))


def bubblewrap_argv(root: Path, read_only: list[str], home: str, as_root: bool) -> list[str]:
    """The bwrap command line (up to the kernel command) for a sandbox rooted at ``root``.

    A root host runs bwrap privileged (so it can bind the Python under /root) with
    only the capabilities to change uid, and setpriv then drops to ``SANDBOX_UID``,
    with no capabilities and no-new-privs, before the kernel starts. Any other user
    runs bwrap in a user namespace of their own uid, with no further namespaces.
    """
    argv = [bubblewrap() or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "sandbox",
            # The host's pid means nothing in the new pid ns; 1 tells ipykernel not to
            # watch a parent (--die-with-parent does that).
            "--setenv", "JPY_PARENT_PID", "1",
            # First, so binds of paths under /tmp (a venv, the sandbox root) land on top.
            "--size", str(TMP_SIZE), "--perms", "1777", "--tmpfs", "/tmp"]
    argv += (["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if as_root
             else ["--unshare-user", "--disable-userns"])
    made = {"/", "/tmp"}

    def parents(path: str) -> list[str]:
        # bwrap makes missing mount points 0700 as root: make them searchable (not
        # writable: inside a user namespace they would be the kernel's own).
        out = []
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                made.add(str(parent))
                out += ["--perms", "0555", "--dir", str(parent)]
        return out

    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in [p for p in ETC_FILES if os.path.exists(p)] + read_only:
        argv += parents(path) + ["--ro-bind", path, path]
    argv += ["--dev", "/dev", "--proc", "/proc",
             "--size", str(SHM_SIZE), "--perms", "1777", "--tmpfs", "/dev/shm"]
    argv += parents(home) + ["--size", str(TMP_SIZE), "--perms", "0777", "--tmpfs", home]
    for path, writable in layout.host(root).mounts().items():
        argv += parents(str(path)) + ["--bind" if writable else "--ro-bind", str(path), str(path)]
    # bwrap's own root and /dev are tmpfs that a user-namespace root could write.
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(root), "--"]
    if as_root:
        argv += [shutil.which("setpriv") or "setpriv", f"--reuid={SANDBOX_UID}",
                 f"--regid={SANDBOX_UID}", "--clear-groups", "--inh-caps=-all",
                 "--no-new-privs", "--"]
    return argv


def write_report(path: str, lines: list[str]) -> None:
    """Write the isolation report into run/, which the previous kernel could write:
    remove what is there (a planted link is removed, never followed), then create."""
    directory = os.open(os.path.dirname(path), os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        name = os.path.basename(path)
        try:
            os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(name, flags, 0o644, dir_fd=directory), "w") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
    finally:
        os.close(directory)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jupyter_analyst.sandbox.confine")
    parser.add_argument("--memory", type=int, default=-1, help="bytes of data memory")
    parser.add_argument("--cpu-seconds", type=int, default=-1)
    parser.add_argument("--processes", type=int, default=-1, help="new processes allowed")
    parser.add_argument("--file-size", type=int, default=-1, help="largest file in bytes")
    parser.add_argument("--no-network", action="store_true", help="(without bubblewrap)")
    parser.add_argument("--bubblewrap", metavar="ROOT", help="confine under bwrap in ROOT")
    parser.add_argument("--ro", action="append", default=[], help="read-only path (bwrap)")
    parser.add_argument("--home", help="private home directory (bwrap)")
    parser.add_argument("--report", help="file to write the isolation outcome to")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    uid = os.geteuid()
    if args.bubblewrap:
        as_root = uid == 0
        command = bubblewrap_argv(Path(args.bubblewrap), args.ro, args.home, as_root) + command
        uid = SANDBOX_UID if as_root else uid
        report = ["confinement: bubblewrap",
                  f"user: uid {uid}" + (" (the host runs as root; no capabilities)" if as_root
                                        else " (yours, in a user namespace)"),
                  "network: isolated",
                  "file system: system and Python read-only, data/ read-only; writable: "
                  "outputs/, run/, a private /tmp and home",
                  "namespaces: " + ("" if as_root else "user, ")
                  + "mount, pid, network, ipc, uts, cgroup; new session",
                  "home: not mounted"]
    else:
        network = isolate_network() if args.no_network else "shared (not requested)"
        report = ["confinement: none (rlimits only)", f"network: {network}"]
    if args.report:
        write_report(args.report, report)
    apply_limits(args.memory, args.cpu_seconds, args.processes, args.file_size, uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
