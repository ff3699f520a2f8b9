"""Hardening of the Docker sandbox against the real engine: no setuid programs, a total
quota on outputs/, a watchdog that ends an orphaned container, the runtime selection.

Code goes straight to the sandbox kernel, as an attacker who beat the validator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import docker_engine

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.errors import SandboxError
from jupyter_analyst.sandbox import SandboxLimits, open_sandbox
from jupyter_analyst.sandbox.docker_provisioner import (
    OUTPUTS_FS,
    unmount_stale_outputs,
)
from jupyter_analyst.sandbox.engine import GVISOR, RUNTIME_ENV, choose_runtime, engine_runtimes

pytestmark = pytest.mark.docker

QUOTA = SandboxLimits.outputs_size
FILES = SandboxLimits.outputs_files


@pytest.fixture(scope="module")
async def sandbox():
    docker_engine()
    box, _ = open_sandbox("docker", SandboxLimits(timeout=120))
    await box.start()
    yield box
    await box.shutdown()


def text_of(execution):
    return "".join(o.get("text", "") for o in execution.outputs if o["output_type"] == "stream")


def quota_mounts() -> list[str]:
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.startswith(OUTPUTS_FS + " ")]


async def test_no_setuid_or_setgid_file_in_the_running_container(sandbox):
    result = await sandbox.execute("""
import os, stat
seen, privileged = 0, []
for top, dirs, files in os.walk("/"):
    if top in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        seen += 1
        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
            privileged.append(path)
print(seen, privileged)
""", timeout=120)
    seen, privileged = text_of(result).split(" ", 1)
    assert int(seen) > 10_000  # the walk really covered the image
    assert privileged.strip() == "[]"


@pytest.mark.skipif(os.geteuid() != 0, reason="the outputs/ quota is a tmpfs only root mounts")
async def test_outputs_have_a_total_size_and_file_quota(sandbox):
    assert str(sandbox.output_dir) in quota_mounts()
    sandbox.clear_outputs()
    # Three files, each under the per-file limit, that together pass the quota.
    big = await sandbox.execute(f"""
chunk = b"q" * (8 * 1024**2)
for part in range(3):
    with open(f"outputs/part{{part}}.bin", "wb") as out:
        for _ in range({QUOTA} // len(chunk) // 2):
            out.write(chunk)
""", timeout=120)
    assert big.status == "error"
    assert big.error["ename"] == "OSError" and "No space left on device" in big.error["evalue"]
    said = PythonAnalysisAgent(backend="docker").execution_error(big, None)
    assert "outputs/ holds at most 512 MiB and 4,096 files" in said and "fewer" in said
    used = sum(entry.stat().st_size for entry in sandbox.output_dir.iterdir())
    assert QUOTA // 2 < used <= QUOTA
    sandbox.clear_outputs()

    many = await sandbox.execute(f"""
made = 0
try:
    for number in range({FILES} * 3):
        open(f"outputs/cell_{{number:05d}}.txt", "w").close()
        made += 1
finally:
    print(made)
""", timeout=120)
    assert many.status == "error" and "No space left on device" in many.error["evalue"]
    assert FILES // 2 < int(text_of(many)) < FILES
    assert len(os.listdir(sandbox.output_dir)) < FILES
    sandbox.clear_outputs()
    after = await sandbox.execute("open('outputs/after.csv', 'w').write('a,b\\n1,2\\n')")
    assert after.status == "ok"  # the space is back once outputs/ is emptied


CHILD = """
import asyncio, os, signal, sys
from jupyter_analyst.sandbox import SandboxLimits, open_sandbox

async def main():
    box, _ = open_sandbox("docker", SandboxLimits(timeout=60))
    await box.start()
    if sys.argv[1] == "stop-init":  # the sandboxed code tries to outlive its owner
        tried = await box.execute("import os, signal\\nos.kill(1, signal.SIGSTOP)")
        assert tried.status == "ok", tried.error
    print(box.manager.provisioner.container_id, box.root, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def gone_within(client, container_id: str, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not client.containers.list(all=True, filters={"id": container_id}):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def start_owner(runtime: str | None, attack: str) -> tuple[subprocess.Popen, str, Path]:
    env = dict(os.environ)
    env.pop(RUNTIME_ENV, None)
    if runtime:
        env[RUNTIME_ENV] = runtime
    child = subprocess.Popen([sys.executable, "-c", CHILD, attack], stdout=subprocess.PIPE,
                             text=True, env=env)
    line = child.stdout.readline().split()
    assert len(line) == 2, f"the owner process did not start its sandbox (exit {child.poll()})"
    return child, line[0], Path(line[1])


# Not (GVISOR, "stop-init"): gVisor (runsc 20221219) lets a process stop its pid namespace's
# init, so there the sandboxed code can keep an orphan (docs/sandbox.md, gVisor).
@pytest.mark.parametrize("runtime, attack", [(None, "none"), (None, "stop-init"),
                                             (GVISOR, "none")])
def test_a_killed_owner_takes_its_container_with_it(runtime, attack):
    client = docker_engine()
    if runtime and runtime not in engine_runtimes(client)[0]:
        pytest.skip(f"the engine has no {runtime} runtime (optional; docs/sandbox.md, gVisor)")
    child, container_id, root = start_owner(runtime, attack)
    try:
        container = client.containers.get(container_id)
        assert container.status == "running"
        assert container.attrs["HostConfig"]["Runtime"] == (runtime or engine_runtimes(client)[1])
        child.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the watchdog is left
        child.wait()
        assert gone_within(client, container_id, 20) is not None
        if os.geteuid() == 0:  # its outputs/ quota mount is swept by the next session
            assert str(root / "outputs") in quota_mounts()
            unmount_stale_outputs()
            assert str(root / "outputs") not in quota_mounts()
    finally:
        child.kill()
        _remove_if_left(client, container_id)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def _remove_if_left(client, container_id: str) -> None:
    for container in client.containers.list(all=True, filters={"id": container_id}):
        container.remove(force=True)


def test_an_unknown_runtime_is_refused_with_the_fix(monkeypatch):
    client = docker_engine()
    monkeypatch.setenv(RUNTIME_ENV, "no-such-runtime")
    with pytest.raises(SandboxError) as caught:
        choose_runtime(client)
    assert "no-such-runtime" in caught.value.problem and "runc" in caught.value.problem
    assert "daemon.json" in caught.value.fix
    monkeypatch.setenv(RUNTIME_ENV, "auto")
    offered, _ = engine_runtimes(client)
    assert choose_runtime(client) == (GVISOR if GVISOR in offered else None)
    monkeypatch.setenv(RUNTIME_ENV, "runc")
    assert choose_runtime(client) == "runc"
