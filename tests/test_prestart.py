"""The sandbox starts before it is needed, and nothing is left behind when it never is.

With the real Docker engine: an IPython process loads the extension (which starts the
sandbox in the background) and exits, before or after the container is up; no container
of that process may remain. ``%config Analyze.prestart = False`` starts nothing early.
"""

import asyncio
import subprocess
import sys
import time

import pytest
from conftest import docker_engine

from jupyter_analyst.agent import PythonAnalysisAgent
from jupyter_analyst.sandbox.engine import PID_LABEL

SHELL = """
import sys
from IPython.testing.globalipapp import start_ipython
shell = start_ipython()
shell.config.Analyze.backend = "docker"
shell.config.Analyze.prestart = {prestart}
shell.run_line_magic("load_ext", "jupyter_analyst")
print("loaded", flush=True)
sys.stdin.readline()  # exit when told
"""


def containers_of(client, pid: int) -> list:
    return client.containers.list(all=True, filters={"label": f"{PID_LABEL}={pid}"})


def until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def notebook_process(prestart: bool) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SHELL.format(prestart=prestart)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "loaded"
    return process


def exit_process(process: subprocess.Popen) -> None:
    process.stdin.write("\n")
    process.stdin.flush()
    assert process.wait(timeout=120) == 0


@pytest.mark.docker
@pytest.mark.parametrize("when", ["while it starts", "once it runs"])
def test_loading_starts_the_sandbox_and_exiting_leaves_no_container(when):
    client = docker_engine()
    process = notebook_process(prestart=True)
    try:
        if when == "once it runs":
            assert until(lambda: any(c.status == "running"
                                     for c in containers_of(client, process.pid)), 120)
        exit_process(process)
    finally:
        process.kill()
    assert until(lambda: not containers_of(client, process.pid), 30), \
        [c.name for c in containers_of(client, process.pid)]


@pytest.mark.docker
def test_prestart_off_starts_nothing_at_load():
    client = docker_engine()
    process = notebook_process(prestart=False)
    try:
        time.sleep(8)  # a start takes 3-5 s here: a pre-start would show by now
        assert containers_of(client, process.pid) == []
        exit_process(process)
    finally:
        process.kill()


@pytest.mark.kernel
@pytest.mark.parametrize("prestart", [True, False])
def test_prestart_off_waits_for_the_code_before_starting(tips, prestart):
    """Generation starts the sandbox in the background only when pre-start is on."""
    agent = PythonAnalysisAgent(backend="local", model="offline", prestart=prestart)
    try:
        session = agent.session("distribution of tip", tips)
        asyncio.run(session.prepare())
        starting = agent._starting is not None or agent.sandbox is not None
        assert starting is prestart
        result = agent.analyze_sync("distribution of tip", tips)
        assert result.success, result.error
    finally:
        agent.cleanup()
