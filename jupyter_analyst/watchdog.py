"""The sandbox container's init process: it runs the kernel and ends the container as soon
as the host process that started it is gone (the orphan a killed notebook kernel leaves).

    python -m jupyter_analyst.watchdog OWNER_SOCKET -- COMMAND...

This file is copied into the image; the host never imports it. It uses the standard
library only.

Liveness without a host thread: before the container starts, the host binds a Unix
socket in ``run/`` and keeps it listening, never accepting. The watchdog connects to it
first, before anything else runs in the container, and only then starts the kernel. When
the host process ends, however it ends (``kill -9`` included), the host's kernel closes the
listening socket and drops the queued connection with it: the watchdog sees the hang-up
and exits, and a container whose init exits is ended by the engine.

The sandboxed code cannot keep an orphan alive: the connection it would need was made
before any of its code ran; the kernel ignores SIGKILL and SIGSTOP sent to a pid
namespace's init from inside it; and init is not dumpable, so it cannot be traced.

It also does an init's other work: it reaps orphaned processes (a fork bomb's zombies),
forwards termination and interrupt signals to the kernel and exits with its status.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import sys

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)
PR_SET_DUMPABLE = 4
NO_OWNER = 125  # exit status when the host cannot be reached at start
OWNER_GONE = 137  # as if killed: the host process went away


def say(text: str) -> None:
    print(f"jupyter-analyst watchdog: {text}", file=sys.stderr, flush=True)


def connect_owner(path: str) -> socket.socket | None:
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        owner.connect(path)
    except OSError as exc:
        say(f"cannot reach the host at {path} ({exc}); not starting the kernel")
        return None
    return owner


def owner_gone(owner: socket.socket) -> bool:
    """Called when the owner socket polls readable: the host never sends, so that is EOF."""
    try:
        return owner.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset: the listening end was closed
        return True


def reap(kernel: int) -> int | None:
    """Collect every exited child; the kernel's exit status once it has exited."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == kernel:
            status = os.waitstatus_to_exitcode(code)
            status = 128 - status if status < 0 else status


def drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        say("usage: python -m jupyter_analyst.watchdog OWNER_SOCKET -- COMMAND...")
        return 2
    owner = connect_owner(argv[0])
    if owner is None:
        return NO_OWNER
    # Not dumpable: code running as the same uid can neither trace init nor read its /proc.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)

    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    kernel = os.posix_spawnp(argv[2], argv[2:], os.environ)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(kernel, signum)
        except ProcessLookupError:  # exited; reaped on the next turn
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the poll below

    poller = select.poll()
    poller.register(owner, select.POLLIN | select.POLLHUP | select.POLLERR)
    poller.register(wake_read, select.POLLIN)
    while True:
        status = reap(kernel)
        if status is not None:
            return status
        for fd, _events in poller.poll():
            if fd == wake_read:
                drain(wake_read)
            elif owner_gone(owner):
                say("the host process is gone; ending the sandbox")
                return OWNER_GONE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
