"""The notebook's kernel restarted while an analysis runs without the panel (``--yes``).

A real ipykernel, started by jupyter_client as a notebook server starts it, runs
``%%analyze --yes`` on the Docker backend with the status shown as a widget (as in
JupyterLab); the restart comes while the code runs. The code comes from the loopback
Claude server and takes a minute, so the restart surely meets it running (an offline
template, done in a fraction of a second, could end before the status said it ran).
jupyter_client interrupts the kernel before it asks it to shut down: the cell must end and
say so in its last status, leave no widget-only status whose saved fallback reads
"Running … 4 s", and leave no running container owned by the old kernel.
"""

from __future__ import annotations

import os
import queue
import re
import time

import pytest
from conftest import docker_engine
from jupyter_client.manager import start_new_kernel
from llm_server import analysis, llm, server  # noqa: F401 (fixtures)

from jupyter_analyst.sandbox.engine import LABEL, PID_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.llm, pytest.mark.timeout(240)]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = ("import os\nfrom jupyter_analyst.datasets import load\ntips = load('tips')\n"
         "%load_ext jupyter_analyst\n%config Analyze.widgets = 'always'\n"
         "print('kernel pid:', os.getpid())")
CELL = "%%analyze tips --yes --backend docker\nShow the distribution of total_bill"
SLOW = ("import time\nfrom jupyter_analyst.runtime import save_metrics\n"
        "for _ in range(120):\n    time.sleep(0.5)\nsave_metrics({'finished': 1})\n")


def test_restart_mid_run_ends_the_cell_and_its_container(tmp_path, llm):
    engine = docker_engine()
    llm.script(analysis(SLOW))
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path),
                                       env={**os.environ, "MPLBACKEND": "Agg"})
    try:
        printed: list[str] = []
        client.execute_interactive(SETUP, timeout=60, output_hook=lambda m: printed.append(
            m["content"].get("text", "")))
        pid = int(re.search(r"kernel pid: (\d+)", "".join(printed)).group(1))
        client.execute(CELL)
        messages, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:  # until the status line says the code runs
            messages.append(client.get_iopub_msg(timeout=120))
            state = messages[-1]["content"].get("data", {}).get("state", {})
            if str(state.get("value", "")).startswith("Running the code"):
                break
        else:
            pytest.fail("the analysis never started running")

        started = time.monotonic()
        manager.shutdown_kernel(now=False, restart=True)  # what Restart does in JupyterLab
        took = time.monotonic() - started
        while True:
            try:
                messages.append(client.get_iopub_msg(timeout=2))
            except queue.Empty:
                break
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)

    assert len(llm.bodies()) == 1  # the slow code was asked for, and nothing more
    shown = [m["content"] for m in messages
             if m["msg_type"] in ("display_data", "update_display_data")]
    # While it ran, the status was a widget whose saved fallback is not a frozen status ...
    live = [c for c in shown if WIDGET_VIEW in c["data"]]
    assert live and all("did not finish" in c["data"]["text/plain"] for c in live)
    # ... and the cell ended with a last status that says so (a restart interrupts first).
    last = [c for c in shown if c["transient"]["display_id"] == live[0]["transient"]["display_id"]]
    assert last[-1]["data"] == {"text/plain": "Interrupted: nothing more runs."}, last[-1]
    print(f"the kernel was gone {took:.1f} s after the shutdown request")

    def running() -> list:
        return engine.containers.list(
            filters={"label": [LABEL, f"{PID_LABEL}={pid}"], "status": "running"})

    deadline = time.monotonic() + 15
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running(), "a sandbox container of the restarted kernel is still running"
