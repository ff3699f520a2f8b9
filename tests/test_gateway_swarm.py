"""The gateway backend against a real Enterprise Gateway on this engine's single-node Swarm.

The module starts the gateway (a container on 127.0.0.1, see sandbox/swarm.py) and stops
it after; each kernel is a Swarm service of the gateway's kernel image.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket

import pytest
import pytest_asyncio
from conftest import StaticGenerator, analyst_shell, docker_engine, fresh_shell, require

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.errors import SandboxError
from jupyter_analyst.sandbox import SandboxLimits, open_sandbox
from jupyter_analyst.sandbox.gateway import TOKEN_ENV, URL_ENV
from jupyter_analyst.sandbox.swarm import build_images, start_gateway, stop_gateway

# One loop for the module, its own: the kernel fixture's WebSocket lives on it, and no
# registration another module left on the session's loop (a closed socket's number, reused)
# can reach it.
pytestmark = [pytest.mark.docker, pytest.mark.gateway, pytest.mark.asyncio(loop_scope="module")]

ANALYSIS = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics, save_table
print("rows:", len(df))
save_metrics({"mean_bill": df["total_bill"].mean(), "rows": len(df),
              "top_day": df.groupby("day")["tip"].mean().idxmax()})
save_table(df.groupby("day")["tip"].mean(), "tip_by_day")
df["total_bill"].plot.hist(bins=20)
plt.title("Total bill")
"""
MEMORY = 768 * 1024**2
PROCESSES = 64


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gateway():
    client = docker_engine()
    swarm = client.info().get("Swarm", {}).get("LocalNodeState")
    if swarm == "inactive":  # a single-node Swarm costs nothing to the engine's other users
        client.swarm.init(advertise_addr="127.0.0.1")
    require(client.info()["Swarm"]["LocalNodeState"] == "active", "Docker Swarm is not active")
    build_images()
    gateway = start_gateway(free_port(), secrets.token_hex(16),
                            limits={"memory": MEMORY, "pids": PROCESSES})
    yield gateway
    stop_gateway(gateway)


@pytest.fixture
def gateway_env(gateway, monkeypatch):
    monkeypatch.setenv(URL_ENV, gateway.url)
    monkeypatch.setenv(TOKEN_ENV, gateway.token)
    return gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def box(gateway):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(URL_ENV, gateway.url)
        patch.setenv(TOKEN_ENV, gateway.token)
        sandbox, _ = open_sandbox("gateway", SandboxLimits(timeout=60))
    await sandbox.start()
    yield sandbox
    await sandbox.shutdown()


def text_of(execution):
    return "".join(o.get("text", "") for o in execution.outputs if o["output_type"] == "stream")


async def test_analysis_through_the_gateway_matches_the_docker_backend(gateway_env, tips):
    results = {}
    for backend in ("docker", "gateway"):
        async with PythonAnalysisAgent(backend=backend,
                                       generator=StaticGenerator(ANALYSIS)) as agent:
            results[backend] = await agent.analyze("Describe the bills", tips)
    local, remote = results["docker"], results["gateway"]
    assert local.success and remote.success, (local.error, remote.error)
    assert remote.backend == "gateway"
    assert remote.metrics == local.metrics
    assert remote.metrics["rows"] == len(tips)
    assert [v["title"] for v in remote.visualizations] == ["Total bill"]
    assert [t["name"] for t in remote.data_outputs] == ["tip_by_day.csv"]
    assert remote.data_outputs[0]["data"] == local.data_outputs[0]["data"]
    assert "rows: 244" in remote.raw_output


async def test_a_batch_spreads_over_several_gateway_kernels(gateway_env, tips):
    slow = StaticGenerator("import time\ntime.sleep(6)\nprint(len(df))")
    async with PythonAnalysisAgent(backend="gateway", generator=slow) as agent:
        results = await agent.batch_analyze([f"question {n}" for n in range(4)], tips,
                                            max_concurrent=2)
    assert all(r.success for r in results), [r.error for r in results]
    assert [r.query for r in results] == [f"question {n}" for n in range(4)]  # input order
    kernels = {r.isolation for r in results}  # "gateway kernel <id> at <url>"
    assert len(kernels) == 2 and all(k.startswith("gateway kernel ") for k in kernels)


async def test_frames_are_sent_once_per_kernel(box, tips):
    await box.bind_frames({"df": tips})
    sent = box.frames_sent
    await box.bind_frames({"df": tips})
    assert box.frames_sent == sent  # the kernel still holds it
    execution = await box.execute("print(len(df), round(df['tip'].sum(), 2))")
    assert text_of(execution).split() == [str(len(tips)), str(round(tips.tip.sum(), 2))]


async def test_containment_holds_for_gateway_kernels(box):
    code = """
import json, os, socket, resource
facts = {"uid": os.getuid(), "gid": os.getgid()}
try:
    open("/opt/venv/x", "w")
    facts["rootfs"] = "writable"
except OSError as exc:
    facts["rootfs"] = exc.errno
for host, port in (("1.1.1.1", 53), ("host.docker.internal", 80), ("172.17.0.1", 2375)):
    try:
        socket.create_connection((host, port), timeout=3).close()
        facts[host] = "open"
    except OSError:
        facts[host] = "blocked"
facts["memory"] = int(open("/sys/fs/cgroup/memory/memory.limit_in_bytes").read())
facts["pids"] = open("/sys/fs/cgroup/pids/pids.max").read().strip()
facts["caps"] = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
facts["nnp"] = open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0]
print(json.dumps(facts))
"""
    execution = await box.execute(code)
    facts = json.loads(text_of(execution))
    assert facts["uid"] == 10001 and facts["gid"] == 10001
    assert facts["rootfs"] == 30  # EROFS
    assert facts["1.1.1.1"] == facts["host.docker.internal"] == facts["172.17.0.1"] == "blocked"
    assert facts["memory"] == MEMORY  # the operator's cap, below the client's 2 GiB
    assert facts["pids"] == str(PROCESSES)
    assert facts["caps"] == "0000000000000000" and facts["nnp"] == "1"


async def test_a_kernel_killed_on_the_cluster_is_reported_and_replaced(box, tips):
    client = docker_engine()
    old = box.manager.kernel_id
    await box.bind_frames({"df": tips})
    service = client.services.list(filters={"label": f"kernel_id={old}"})
    assert len(service) == 1
    running = asyncio.ensure_future(box.execute("import time; time.sleep(120)", timeout=90))
    await asyncio.sleep(3)
    # The cluster loses the kernel mid-analysis (SIGKILL, as the OOM killer or a node does).
    containers = client.containers.list(
        filters={"label": f"com.docker.swarm.service.id={service[0].id}"})
    assert len(containers) == 1
    containers[0].kill()
    execution = await running
    assert execution.status == "died" and execution.restarted, (execution.status, execution.error)
    assert box.manager.kernel_id != old
    warnings = await box.bind_frames({"df": tips})  # the new kernel gets the frame again
    execution = await box.execute("print(len(df))")
    assert text_of(execution).strip() == str(len(tips)), warnings


async def test_missing_gateway_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(SandboxError) as error:
        open_sandbox("gateway")
    assert URL_ENV in error.value.problem and "docs/gateway.md" in error.value.fix


async def test_unreachable_gateway_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}")
    sandbox, _ = open_sandbox("gateway")
    with pytest.raises(SandboxError) as error:
        await sandbox.start()
    assert "cannot be reached" in error.value.problem


async def test_the_magic_runs_the_pipeline_on_the_gateway(gateway, monkeypatch, tips):
    monkeypatch.setenv(URL_ENV, "")  # restored (unset) after the test
    monkeypatch.setenv(TOKEN_ENV, gateway.token)
    shell = analyst_shell(model="offline", gateway_url=gateway.url)
    shell.user_ns["tips"] = tips
    try:
        shell.run_cell_magic("analyze", "tips --backend gateway --yes --out result",
                             "What is the average tip?")
        result = shell.user_ns["result"]
        assert result.success and result.backend == "gateway", result.error
        assert any(abs(v - tips.tip.mean()) < 1e-6 for v in result.metrics.values()
                   if isinstance(v, float)), result.metrics
    finally:
        fresh_shell()
