"""Start a command with resource limits and, where the OS allows it, no network.

Used by the local backend as a prefix to the kernel command, so the limits are
applied in the kernel's own process before it execs, instead of in a
``preexec_fn`` of a threaded host process:

    python -m jupyter_analyst.sandbox.confine --memory 2147483648 ... -- python -m ipykernel_launcher -f conn.json

Writes ``network: isolated`` or ``network: shared (<reason>)`` to the file named by
``--report`` so the host can label the sandbox honestly.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


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


def tasks_of_current_user() -> int:
    """Threads the current user already runs (RLIMIT_NPROC counts them all)."""
    uid, count = str(os.getuid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            count += int(fields.get("Threads", "1"))
    return count


def apply_limits(memory: int, cpu_seconds: int, processes: int, file_size: int) -> None:
    if processes >= 0:
        # The limit is per user, so it is given as headroom above what already runs.
        processes += tasks_of_current_user()
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jupyter_analyst.sandbox.confine")
    parser.add_argument("--memory", type=int, default=-1, help="bytes of data memory")
    parser.add_argument("--cpu-seconds", type=int, default=-1)
    parser.add_argument("--processes", type=int, default=-1, help="new processes allowed")
    parser.add_argument("--file-size", type=int, default=-1, help="largest file in bytes")
    parser.add_argument("--no-network", action="store_true")
    parser.add_argument("--report", help="file to write the isolation outcome to")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    network = isolate_network() if args.no_network else "shared (not requested)"
    if args.report:
        with open(args.report, "w") as handle:
            handle.write(f"network: {network}\n")
    apply_limits(args.memory, args.cpu_seconds, args.processes, args.file_size)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
