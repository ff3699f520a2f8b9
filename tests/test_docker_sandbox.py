"""The Docker backend against the real engine: code runs as an attacker who beat the validator.

Everything here goes straight to the sandbox kernel (``KernelSandbox.execute``),
bypassing the safety validator, and checks what the container itself prevents.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from conftest import docker_engine

from jupyter_analyst.results.collect import collect
from jupyter_analyst.results.outputs import clean_output
from jupyter_analyst.sandbox import SandboxLimits, open_sandbox
from jupyter_analyst.sandbox.engine import PID_LABEL, docker_client

pytestmark = pytest.mark.docker

MEMORY = 512 * 1024**2
PROCESSES = 64
FILE_SIZE = 8 * 1024**2


def our_containers(client):
    return client.containers.list(all=True, filters={"label": f"{PID_LABEL}={os.getpid()}"})


@pytest.fixture(scope="module")
async def sandbox():
    client = docker_engine()
    limits = SandboxLimits(memory=MEMORY, cpus=1.0, processes=PROCESSES, file_size=FILE_SIZE,
                           timeout=60)
    box, note = open_sandbox("docker", limits)
    assert note is None
    await box.start()
    yield box
    root = box.root
    await box.shutdown()
    assert not root.exists()
    assert our_containers(client) == []  # nothing left behind


async def run(box, code, **kwargs):
    return await box.execute(code, **kwargs)


def text_of(execution):
    return "".join(o.get("text", "") for o in execution.outputs if o["output_type"] == "stream")


def error_of(execution):
    return (execution.error or {}).get("ename")


async def test_kernel_runs_in_a_labelled_container_over_ipc(sandbox):
    info = sandbox.manager.get_connection_info()
    assert info["transport"] == "ipc" and info["ip"].startswith(str(sandbox.root / "run"))
    container = sandbox.manager.provisioner.container
    container.reload()
    assert container.attrs["State"]["Running"]
    assert sandbox.backend == "docker"
    assert sandbox.isolation_report().startswith("network: isolated")


async def test_container_flags_are_applied(sandbox):
    host = sandbox.manager.provisioner.container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == PROCESSES
    assert host["Memory"] == MEMORY and host["MemorySwap"] == MEMORY
    assert host["NanoCpus"] == 10**9
    assert host["LogConfig"]["Config"]["max-size"] == "1m"
    assert "noexec" in host["Tmpfs"]["/tmp"] and host["ShmSize"] == 64 * 1024**2
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]}["fsize"] == FILE_SIZE
    binds = sorted(bind.split(":", 1)[1] for bind in host["Binds"])
    assert binds == ["/sandbox/data:ro", "/sandbox/outputs:rw", "/sandbox/run:rw"]
    env = sandbox.manager.provisioner.container.attrs["Config"]["Env"]
    assert not [e for e in env if "KEY" in e or "TOKEN" in e or "SECRET" in e]


async def test_dns_and_outbound_connections_fail(sandbox, monkeypatch):
    result = await run(sandbox, """
import socket
print(sorted(name for _, name in socket.if_nameindex()))
for attempt in (lambda: socket.getaddrinfo("pypi.org", 443),
                lambda: socket.create_connection(("1.1.1.1", 53), timeout=3),
                lambda: socket.create_connection(("172.17.0.1", 2375), timeout=3)):
    try:
        attempt()
        print("connected")
    except OSError as exc:
        print("refused", type(exc).__name__)
""")
    lines = text_of(result).strip().splitlines()
    assert lines[0] == "['lo']"
    assert len(lines) == 4 and all(line.startswith("refused") for line in lines[1:])


async def test_root_file_system_and_data_are_read_only(sandbox, tips):
    await sandbox.bind_frames({"tips": tips})
    result = await run(sandbox, """
import errno, os
for path in ("/etc/evil", "/opt/venv/lib/evil.py", "/sandbox/evil", "/sandbox/data/evil",
             "/usr/bin/evil"):
    try:
        open(path, "w").write("x")
        print(path, "written")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
data = sorted(os.listdir("/sandbox/data"))[0]
try:
    open(os.path.join("/sandbox/data", data), "ab").write(b"x")
except OSError as exc:
    print("data file", errno.errorcode[exc.errno])
""")
    lines = text_of(result).strip().splitlines()
    assert lines and not [line for line in lines if "written" in line], lines
    assert all(line.endswith(("EROFS", "EACCES")) for line in lines), lines
    assert lines[-1].startswith("data file")


async def test_writes_succeed_only_in_outputs_and_tmp_within_limits(sandbox):
    sandbox.clear_outputs()
    result = await run(sandbox, f"""
import errno, os
open("outputs/ok.txt", "w").write("fine")
open("/tmp/ok.txt", "w").write("fine")
print(os.getcwd())
try:
    with open("outputs/big.bin", "wb") as handle:
        handle.write(b"x" * ({FILE_SIZE} + 1))
    print("big written")
except OSError as exc:
    print("big", errno.errorcode[exc.errno])
os.remove("outputs/big.bin")
try:
    os.chmod("/tmp/ok.txt", 0o755); os.execv("/tmp/ok.txt", ["x"])
except OSError as exc:
    print("exec", errno.errorcode[exc.errno])
""")
    assert text_of(result).split() == ["/sandbox", "big", "EFBIG", "exec", "EACCES"], result.error
    assert (sandbox.output_dir / "ok.txt").read_text() == "fine"


async def test_the_only_writable_places_are_the_expected_ones(sandbox):
    result = await run(sandbox, """
import os
writable = []
for line in open("/proc/mounts"):
    mount = line.split()[1]
    try:
        path = os.path.join(mount, ".probe")
        open(path, "w").close()
        os.remove(path)
        writable.append(mount)
    except OSError:
        pass
print(sorted(writable))
""")
    assert text_of(result).strip() == str(sorted(
        ["/tmp", "/dev/shm", "/dev/mqueue", "/sandbox/run", "/sandbox/outputs"]))


async def test_not_root_no_capabilities_no_new_privileges(sandbox):
    result = await run(sandbox, """
import os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\\t" in line)
print(os.getuid(), os.geteuid(), os.getgid())
print(status["CapEff"].strip(), status["CapPrm"].strip(), status["NoNewPrivs"].strip())
""")
    ids, caps = text_of(result).strip().splitlines()
    assert "0" not in ids.split()
    assert caps.split() == ["0000000000000000", "0000000000000000", "1"]


async def test_fork_bomb_stops_at_the_pids_limit(sandbox):
    result = await run(sandbox, """
import os, time
children, failure = [], None
try:
    for _ in range(5000):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except OSError as exc:
    failure = type(exc).__name__
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(len(children), failure)
""", timeout=60)
    forked, failure = text_of(result).split()
    assert 0 < int(forked) < PROCESSES and failure == "BlockingIOError"
    again = await run(sandbox, "print(1 + 1)")
    assert text_of(again).strip() == "2"


async def test_memory_overrun_is_a_clean_error_and_the_kernel_keeps_working(sandbox, tips):
    await sandbox.bind_frames({"tips": tips})
    result = await run(sandbox, f"import numpy as np\nhog = np.ones({MEMORY} // 8 * 2)")
    assert result.status == "error" and error_of(result) == "MemoryError"
    assert not result.restarted
    after = await run(sandbox, "print(len(tips))")
    assert text_of(after).strip() == str(len(tips))


async def test_processes_that_together_overrun_memory_hit_the_cgroup_limit(sandbox, tips):
    """Each child stays under its own data limit; together they pass the container's.

    The second child starts only once the first holds its share, so when the cgroup
    fills, a child (about 300 MiB) is the largest process and the OOM killer's choice,
    not the kernel. Children growing side by side at a third each were smaller than the
    kernel with pandas loaded, and the kernel was sometimes the one killed.
    """
    await sandbox.bind_frames({"tips": tips})
    chunk = 32 * 1024**2
    result = await run(sandbox, f"""
import subprocess, sys
hog = ("import numpy, time; "
       "h = [numpy.ones({chunk} // 8) for _ in range({int(MEMORY * 0.6) // chunk})]; "
       "print('held', flush=True); time.sleep(5)")
first = subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True)
first.stdout.readline()  # it holds its share (or was killed already)
second = subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.DEVNULL)
print(sorted(child.wait() for child in (first, second)))
""")
    assert result.status == "ok", result.error
    statuses = [int(s) for s in text_of(result).strip("[]\n").split(",")]
    assert -9 in statuses  # the kernel's OOM killer ended a child (SIGKILL)
    after = await run(sandbox, "print(len(tips))")
    assert text_of(after).strip() == str(len(tips))


async def test_infinite_loop_is_interrupted_at_the_timeout(sandbox, tips):
    await sandbox.bind_frames({"tips": tips})
    started = asyncio.get_running_loop().time()
    result = await run(sandbox, "while True:\n    pass", timeout=3)
    assert result.status == "timeout"
    assert asyncio.get_running_loop().time() - started < 3 + 10
    assert not result.restarted  # the interrupt message was enough; state is kept
    after = await run(sandbox, "print(len(tips))")
    assert text_of(after).strip() == str(len(tips))


async def test_restart_keeps_the_connection_info(sandbox, tips):
    before = sandbox.manager.get_connection_info()
    old_container = sandbox.manager.provisioner.container.id
    await sandbox.restart()
    assert sandbox.manager.get_connection_info() == before
    assert sandbox.manager.provisioner.container.id != old_container
    client = docker_client()
    assert [c.id for c in our_containers(client)] == [sandbox.manager.provisioner.container.id]
    await sandbox.bind_frames({"tips": tips})
    result = await run(sandbox, "print(len(tips))")
    assert text_of(result).strip() == str(len(tips))


async def test_a_killed_kernel_is_restarted(sandbox):
    result = await run(sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert result.status == "died" and result.restarted
    again = await run(sandbox, "print('back')")
    assert text_of(again).strip() == "back"


HOSTILE = r'''
import os, base64, struct, zlib, pickle
from IPython.display import display
display({"application/javascript": "alert(document.cookie)",
         "text/plain": "js"}, raw=True)
display({"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
         "text/plain": "svg"}, raw=True)
display({"text/html": '<table><tr><td onclick="alert(1)">1</td></tr></table>'
                      '<script>alert(1)</script><img src=x onerror=alert(1)>'}, raw=True)
display({"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
         "application/x-python-pickle": base64.b64encode(pickle.dumps({"a": 1})).decode(),
         "text/plain": "widget"}, raw=True)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
giant = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10**6, 10**6, 8, 2, 0, 0, 0))
         + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
display({"image/png": base64.b64encode(giant).decode(), "text/plain": "giant"}, raw=True)
open("outputs/giant.png", "wb").write(giant)
os.symlink("/etc/passwd", "outputs/passwd.txt")
os.mkfifo("outputs/pipe.csv")
open("outputs/frame.pkl", "wb").write(pickle.dumps({"a": 1}))
open("outputs/looks_like.csv", "wb").write(pickle.dumps(os.system))
print("x" * 3_000_000)
'''


async def test_hostile_outputs_are_neutralised_on_the_host(sandbox):
    sandbox.clear_outputs()
    result = await run(sandbox, HOSTILE)
    assert result.status == "ok", result.error
    cleaned = [c for c in (clean_output(o) for o in result.outputs) if c is not None]
    mimes = {mime for c in cleaned if c["output_type"] == "display_data" for mime in c["data"]}
    assert mimes <= {"text/plain", "text/html"}
    html = " ".join(c["data"]["text/html"] for c in cleaned
                    if c["output_type"] == "display_data" and "text/html" in c["data"])
    assert "<td>1</td>" in html
    assert not any(bad in html.lower() for bad in ("script", "onclick", "onerror", "<img"))
    collected = await asyncio.wait_for(asyncio.to_thread(collect, cleaned, sandbox.output_dir), 10)
    assert len(collected.stdout) < 200_000
    assert collected.visualizations == []  # neither the giant PNG output nor the file
    taken = {item["name"] for item in collected.data_outputs}
    assert taken == {"looks_like.csv"}  # text, never unpickled; the others are refused
    skipped = " ".join(collected.skipped_files)
    for name in ("passwd.txt", "pipe.csv", "frame.pkl", "giant.png"):
        assert name in skipped
    assert "root:" not in json.dumps(collected.data_outputs)
