"""Terminal IPython: the status line is rewritten in place, not printed line after line.

A real ``ipython`` runs an ``%%analyze`` cell with its output on a pseudo-terminal
(python's ``pty``) 60 columns wide; the test reads what the terminal received.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]

COLUMNS = 60
IPYTHON = Path(sys.executable).with_name("ipython")
CELL = ("from jupyter_analyst.datasets import load\n"
        "tips = load('tips')\n"
        "get_ipython().run_line_magic('load_ext', 'jupyter_analyst')\n"
        "get_ipython().run_cell_magic('analyze', 'tips --yes --model offline --backend local', "
        "'Show the distribution of total_bill')\n")
STATUS = re.compile(r"[^\r\n]* … \d+ s")  # "Running the code in the local sandbox … 3 s"


def run_in_terminal(code: str, limit: float = 180) -> str:
    """What a terminal of COLUMNS columns shows byte by byte while ipython runs ``code``."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([str(IPYTHON), "--colors=NoColor", "-c", code], stdin=follower,
                               stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    received, deadline = b"", time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            received += chunk
    finally:
        process.kill() if process.poll() is None else None
        process.wait(timeout=30)
        os.close(leader)
    return received.decode("utf-8", errors="replace")


def test_the_status_line_is_rewritten_in_place():
    shown = run_in_terminal(CELL)
    assert "✓ Done · offline templates" in shown, shown[-2000:]
    before_done = shown[:shown.index("✓ Done")]
    updates = [u for u in re.split(r"[\r\n]", before_done) if STATUS.fullmatch(u.strip())]
    # Several updates (every 0.25 s), each starting with \r at the same place ...
    assert len(updates) >= 4, before_done
    assert len({u.strip() for u in updates}) >= 2, updates  # the seconds count up
    # ... and none of them ends a line: no status text is followed by a newline.
    assert not re.search(r" … \d+ s *\r?\n", before_done), before_done
    # Cut to the terminal's width, so that \r can rewrite it (a wrapped line could not be).
    assert all(len(u) < COLUMNS for u in updates), max(updates, key=len)
    # What the code printed starts on a line of its own, not glued to the status.
    at = shown.index("total_bill: mean 19.8")
    assert shown[at - 1] in "\r\n", repr(shown[at - 120:at + 20])
    assert shown[:at].rstrip("\r").rsplit("\r", 1)[-1].strip() == ""  # the status was wiped
    assert "Idle" not in before_done  # between stages it keeps saying what it did last
