"""The Docker backend's host side writes into run/ through no link the sandbox planted.

The code goes straight to the kernel (``KernelSandbox.execute``), as code that beat
the validator would: it plants a link and kills its kernel, so that the host
writes run/isolation.txt again when it restarts the container.
"""

from __future__ import annotations

import pytest
from conftest import docker_engine

from jupyter_analyst.sandbox import SandboxLimits, open_sandbox

pytestmark = pytest.mark.docker


async def test_restart_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    docker_engine()
    host_file = tmp_path / "shell-profile"
    host_file.write_text("export KEEP=me\n")
    box, _ = open_sandbox("docker", SandboxLimits(memory=512 * 1024**2, timeout=60))
    await box.start()
    try:
        plant = ("import os, signal\n"
                 "os.remove('run/isolation.txt')\n"
                 f"os.symlink({str(host_file)!r}, 'run/isolation.txt')\n"
                 "os.kill(os.getpid(), signal.SIGKILL)\n")
        execution = await box.execute(plant)
        assert execution.status == "died" and execution.restarted
        assert host_file.read_text() == "export KEEP=me\n"  # the host file is untouched
        link = box.root / "run" / "isolation.txt"
        assert not link.is_symlink()
        assert box.isolation_report() == "network: isolated (docker network none)"
        after = await box.execute("print(6 * 7)")
        assert after.status == "ok"
    finally:
        await box.shutdown()
