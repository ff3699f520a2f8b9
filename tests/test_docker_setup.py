"""The Docker backend around the kernel: the image, backend choice, the CLI, the kernelspec,
and %%analyze end to end on the real engine."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import pytest
from conftest import analyst_shell, docker_engine
from IPython.utils.capture import capture_output
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from jupyter_analyst import PythonAnalysisAgent, cli
from jupyter_analyst.errors import SandboxError
from jupyter_analyst.layout import CONTAINER
from jupyter_analyst.sandbox import LOCAL_LABEL, open_sandbox
from jupyter_analyst.sandbox.engine import (
    LABEL,
    PID_LABEL,
    RUNTIME_ENV,
    RUNTIME_LABEL,
    SESSION_LABEL,
    engine_runtimes,
    image_name,
    owner_labels,
    remove_container,
)
from jupyter_analyst.sandbox.image import build_image
from jupyter_analyst.sandbox.kernelspec import KERNEL_NAME

pytestmark = pytest.mark.docker

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture(scope="module")
def client():
    return docker_engine()


def run_in_image(client, *command):
    return client.containers.run(image_name(), list(command), remove=True, network_mode="none",
                                 read_only=True, tmpfs={"/tmp": "size=64m"}).decode()


# -- the image --------------------------------------------------------------------------
def test_image_is_lean_and_runs_as_a_numeric_non_root_user(client):
    config = client.images.get(image_name()).attrs["Config"]
    user = config["User"].split(":")
    assert user[0].isdigit() and user[0] != "0"
    # The recipe agrees with the layout the provisioner mounts (jupyter_analyst/layout.py).
    assert config["WorkingDir"] == str(CONTAINER.root)
    assert {f"{k}={v}" for k, v in CONTAINER.environment().items()} <= set(config["Env"])
    mount_points = run_in_image(client, "ls", "-d", *map(str, CONTAINER.mounts()))
    assert mount_points.split() == list(map(str, CONTAINER.mounts()))
    found = run_in_image(client, "sh", "-c",
                         "for t in pip pip3 gcc cc curl wget apt-get; do command -v $t; done; "
                         "ls /opt/venv/lib/python3.11/site-packages/jupyter_analyst; true")
    assert found.split() == ["/usr/bin/apt-get", "__init__.py", "runtime.py",
                             "watchdog.py"]


def test_image_has_the_analysis_stack(client):
    out = run_in_image(client, "python", "-c",
                       "import pyarrow, pandas, scipy.stats, statsmodels.api, sklearn.linear_model,"
                       " matplotlib.pyplot, plotly.express, ipykernel, sys;"
                       " from jupyter_analyst.runtime import save_metrics, save_table;"
                       " print(sys.version_info[:2], pyarrow.__version__)")
    version, pyarrow = out.strip().rsplit(" ", 1)
    assert version == "(3, 11)"
    assert tuple(int(p) for p in pyarrow.split(".")[:2]) >= (14, 0)


def test_an_unchanged_recipe_is_not_rebuilt(client):
    build_image(log=lambda line: None)  # brings the image up to date if the recipe moved on
    image_id = client.images.get(image_name()).id
    started = time.monotonic()
    result = build_image(log=lambda line: None)
    assert result.mode == "up to date"
    assert time.monotonic() - started < 10
    assert client.images.get(image_name()).id == image_id


def test_an_image_built_for_other_helper_code_is_refused(client, monkeypatch):
    stale = "jupyter-analyst-sandbox:stale-runtime-test"
    client.images.build(fileobj=io.BytesIO(f"FROM {image_name()}\n".encode()), tag=stale,
                        labels={RUNTIME_LABEL: "0" * 16}, rm=True)
    monkeypatch.setenv("DOCKER_IMAGE_NAME", stale)
    try:
        with pytest.raises(SandboxError) as caught:
            open_sandbox("docker")
        assert "another version" in caught.value.problem
        assert "jupyter-analyst build-image" in caught.value.fix
    finally:
        client.images.remove(stale)


# -- backend choice ------------------------------------------------------------------------
def test_docker_backend_fails_with_an_actionable_message_when_the_image_is_missing(
        client, monkeypatch):
    monkeypatch.setenv("DOCKER_IMAGE_NAME", "jupyter-analyst-missing:none")
    with pytest.raises(SandboxError) as caught:
        open_sandbox("docker")
    assert "jupyter-analyst-missing:none" in caught.value.problem
    assert "jupyter-analyst build-image" in caught.value.fix


def test_docker_backend_fails_with_an_actionable_message_when_the_engine_is_down(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(SandboxError) as caught:
        open_sandbox("docker")
    assert "not reachable" in caught.value.problem and "Start Docker" in caught.value.fix


def test_auto_uses_docker_when_possible_and_says_why_it_falls_back(client, monkeypatch):
    sandbox, note = open_sandbox("auto")
    assert sandbox.backend == "docker" and note is None
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    sandbox, note = open_sandbox("auto")
    assert sandbox.backend == "local" and LOCAL_LABEL in note and "not reachable" in note


# -- the command line ----------------------------------------------------------------------
def test_doctor_with_the_engine_up(client, capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret-value")
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "Docker engine" in out and "reachable" in out
    assert "python 3.11" in out and "pandas " in out and "pyarrow " in out
    assert "backend='auto': docker" in out
    assert "ANTHROPIC_API_KEY is set" in out and "sk-ant-test-secret-value" not in out
    offered, default = engine_runtimes(client)
    assert f"runtimes offered: {', '.join(offered)}; the sandbox uses {default}" in out
    assert "outputs/ quota: " in out


def test_doctor_names_a_runtime_the_engine_lacks(client, capsys, monkeypatch):
    monkeypatch.setenv(RUNTIME_ENV, "runsc-missing")
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "SANDBOX_RUNTIME=runsc-missing names a runtime" in out and "daemon.json" in out


def test_doctor_with_the_engine_down(capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "not reachable" in out and "Start Docker" in out
    assert "backend='auto': local (bubblewrap)" in out
    assert "ANTHROPIC_API_KEY is not set" in out and "offline" in out


def test_cleanup_removes_orphans_but_not_live_sessions(client, capsys):
    dead_pid = 2**22 + 1  # above the kernel's pid_max default: no such process
    labels = {**owner_labels(), SESSION_LABEL: "orphan-test"}
    orphan = client.containers.create(image_name(), ["true"],
                                      labels={**labels, PID_LABEL: str(dead_pid)})
    live = client.containers.create(image_name(), ["true"], labels=labels)
    try:
        assert cli.main(["cleanup"]) == 0
        # At least this one: a shared engine may hold other sessions' orphans too.
        assert re.search(r"Removed [1-9]\d* orphaned", capsys.readouterr().out)
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
        assert orphan.id not in remaining and live.id in remaining
    finally:
        for container in (orphan, live):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


def test_a_container_removed_twice_at_once_is_gone_when_either_returns(client):
    """The engine answers 409 to a removal already under way (the watchdog's auto-remove,
    another cleanup); that is not an error, and the container is gone when we return."""
    for _ in range(4):
        container = client.containers.create(image_name(), ["true"],
                                             labels={**owner_labels(), SESSION_LABEL: "race"})
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            removals = [pool.submit(remove_container, client.containers.get(container.id))
                        for _ in range(2)]
            removed = [removal.result() for removal in removals]
            with pytest.raises(docker.errors.NotFound):
                client.containers.get(container.id)
        assert removed.count(True) <= 1


SESSION_SCRIPT = """
import asyncio, sys, time
from jupyter_analyst.sandbox import open_sandbox
async def main():
    box, _ = open_sandbox("docker")
    await box.start()
    print(box.manager.provisioner.container.id, box.root, flush=True)
    if sys.argv[1] == "hang":
        time.sleep(600)
asyncio.run(main())  # exits without shutting the sandbox down
"""


def test_containers_go_at_exit_and_a_killed_session_leaves_only_an_orphan_to_clean(client):
    exits = subprocess.run([sys.executable, "-c", SESSION_SCRIPT, "exit"], capture_output=True,
                           text=True, timeout=180)
    assert exits.returncode == 0, exits.stderr
    container_id, root = exits.stdout.split()
    assert not os.path.exists(root)  # the sandbox directory goes at exit too
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)  # removed at interpreter exit
    hangs = subprocess.Popen([sys.executable, "-c", SESSION_SCRIPT, "hang"],
                             stdout=subprocess.PIPE, text=True)
    try:
        container_id, root = hangs.stdout.readline().split()
        assert client.containers.get(container_id).status == "running"
    finally:
        hangs.kill()  # SIGKILL: no atexit; the container's watchdog ends it
        hangs.wait()
    # ...and cleanup unmounts the outputs/ quota the killed session left (as root)
    assert cli.main(["cleanup"]) == 0
    shutil.rmtree(root)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


# -- the kernelspec: a whole notebook on the sandboxed kernel --------------------------------
# A Jupyter server whose environment lacks jupyter-analyst: this venv's site-packages
# without its .pth files (so without the editable install), run with -S from a bare folder.
FOREIGN_SERVER = r"""
import importlib.util, json, sys, time
sys.path.append(sys.argv[1])
# The editable install leaves site-packages/jupyter_analyst/ holding only the image recipe
# (package data): a namespace without our code, so ask for a module of ours.
try:
    ours = importlib.util.find_spec("jupyter_analyst.sandbox")
except ModuleNotFoundError:
    ours = None
if ours is not None:
    sys.exit("jupyter_analyst is importable here")
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

manager = KernelManager(kernel_name=sys.argv[2],
                        kernel_spec_manager=KernelSpecManager(kernel_dirs=[sys.argv[3]]))
manager.start_kernel(cwd=sys.argv[4])  # in the notebook's folder, on tcp, as a server does
kernel = manager.client()
kernel.start_channels()
seen = {"pid": manager.provisioner.pid, "transport": manager.transport}
try:
    kernel.wait_for_ready(timeout=120)
    outputs = []
    reply = kernel.execute_interactive(
        "import os, resource, pandas as pd\n"
        "print(pd.read_csv('sales.csv').amount.sum(), os.getuid() != 0, os.getcwd(),\n"
        "      resource.getrlimit(resource.RLIMIT_DATA)[0])",
        output_hook=lambda msg: outputs.append(msg["content"].get("text", "")), timeout=60)
    seen.update(status=reply["content"]["status"], printed="".join(outputs).split())
    kernel.execute_interactive("x = 1", timeout=60)
    msg_id = kernel.execute("import time; time.sleep(60)")
    time.sleep(2)
    manager.interrupt_kernel()  # interrupt_mode "message": relayed on the control channel
    reply = kernel.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    seen["interrupted"] = reply["content"].get("ename")
    manager.restart_kernel()  # the relay ends with its kernel; the server starts a new one
    kernel.wait_for_ready(timeout=120)
    outputs.clear()
    reply = kernel.execute_interactive(
        "print('x' in globals())", timeout=60,
        output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
    seen["after_restart"] = "".join(outputs).split()
    seen["pids"] = [seen["pid"], manager.provisioner.pid]
finally:
    kernel.stop_channels()
    manager.shutdown_kernel()  # a shutdown request: the relay ends with the kernel
print(json.dumps(seen))
"""


def test_installed_kernelspec_runs_in_the_sandbox_from_a_server_without_the_package(
        client, tmp_path):
    prefix = tmp_path / "prefix"
    assert cli.main(["install-kernelspec", "--prefix", str(prefix)]) == 0
    kernels = prefix / "share" / "jupyter" / "kernels"
    spec = KernelSpecManager(kernel_dirs=[str(kernels)]).get_kernel_spec(KERNEL_NAME)
    assert spec.display_name == "Python (jupyter-analyst sandbox)"
    assert os.path.isabs(spec.argv[0]) and os.path.samefile(spec.argv[0], sys.executable)
    assert "kernel_provisioner" not in spec.metadata  # a server without our entry points
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    (notebook_dir / "sales.csv").write_text("region,amount\nEU,3\nUS,4\n")
    bare = tmp_path / "bare"
    bare.mkdir()
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    done = subprocess.run([sys.executable, "-S", "-c", FOREIGN_SERVER, site_packages,
                           KERNEL_NAME, str(kernels), str(notebook_dir)],
                          cwd=bare, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SANDBOX_MEMORY_LIMIT": "1500m"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["transport"] == "tcp"
    assert seen["status"] == "ok"
    # the server's SANDBOX_MEMORY_LIMIT reaches the provisioner, which was given no limits
    assert seen["printed"] == ["7", "True", str(CONTAINER.data), str(1500 * 1024**2)]
    assert seen["interrupted"] == "KeyboardInterrupt"
    assert seen["after_restart"] == ["False"]  # a new kernel, in a new container
    assert not [c for c in client.containers.list(all=True, filters={"label": LABEL})
                if c.labels.get(PID_LABEL) in map(str, seen["pids"])]


def test_doctor_says_when_the_installed_kernelspec_cannot_start(client, tmp_path, capsys,
                                                               monkeypatch):
    prefix = tmp_path / "prefix"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user"))  # no user-level spec
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    assert cli.main(["doctor"]) == 0
    assert f"Kernelspec '{cli.KERNELSPEC_DISPLAY_NAME}': not installed" in capsys.readouterr().out
    assert cli.main(["install-kernelspec", "--prefix", str(prefix)]) == 0
    folder = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0
    assert f"[ok] Kernelspec in {folder}: its interpreter runs" in capsys.readouterr().out
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    # The environment it was installed from is gone...
    spec["argv"][0] = str(tmp_path / "removed-venv" / "bin" / "python")
    spec_file.write_text(json.dumps(spec))
    cli.main(["doctor"])
    out = capsys.readouterr().out
    assert f"[!!] Kernelspec in {folder}: its interpreter {spec['argv'][0]} is missing" in out
    assert "Reinstall it with `jupyter-analyst install-kernelspec`" in out
    # ...or it names a Python without jupyter-analyst
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    spec["argv"][0] = str(bare / "bin" / "python")
    spec_file.write_text(json.dumps(spec))
    cli.main(["doctor"])
    out = capsys.readouterr().out
    assert f"its interpreter {spec['argv'][0]} cannot import jupyter_analyst" in out
    assert "No module named 'jupyter_analyst'" in out


def _notebook_folder(tmp_path) -> tuple[KernelSpecManager, Path]:
    """The installed kernelspec and an empty notebook folder."""
    prefix = tmp_path / "prefix"
    assert cli.main(["install-kernelspec", "--prefix", str(prefix)]) == 0
    kernels = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    assert kernels.get_kernel_spec(KERNEL_NAME).display_name == \
        "Python (jupyter-analyst sandbox)"
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    return kernels, notebook_dir


@contextlib.asynccontextmanager
async def _notebook_kernel(kernels: KernelSpecManager, notebook_dir: Path):
    """A kernel of the kernelspec, started as a Jupyter server starts one for a notebook in
    ``notebook_dir``, and shut down as a server does (a shutdown request, so the relay ends
    with its kernel and keeps its outputs/)."""
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernels)
    await manager.start_kernel(cwd=str(notebook_dir))
    kernel = manager.client()
    kernel.start_channels()
    try:
        await kernel.wait_for_ready(timeout=120)
        yield kernel
    finally:
        kernel.stop_channels()
        await manager.shutdown_kernel()


async def _run_cell(kernel, code: str) -> tuple[dict, list[dict]]:
    messages = []
    reply = await kernel.execute_interactive(code, output_hook=messages.append, timeout=60)
    return reply, messages


async def test_installed_kernelspec_runs_a_notebook_kernel_in_the_sandbox(client, tmp_path):
    kernels, notebook_dir = _notebook_folder(tmp_path)
    (notebook_dir / "sales.csv").write_text("region,amount\nEU,3\nUS,4\n")
    (notebook_dir / "outputs").mkdir()
    (notebook_dir / "outputs" / "earlier.csv").write_text("kept,1\n")
    async with _notebook_kernel(kernels, notebook_dir) as kernel:
        reply, messages = await _run_cell(
            kernel,
            "import os, pandas as pd\n"
            "sales = pd.read_csv('sales.csv')\n"  # the notebook's folder, as in a normal kernel
            "sales.to_csv('outputs/by_region.csv', index=False)\n"
            "open('outputs/notes.txt', 'w').write('two regions')\n"
            "os.symlink('/etc/passwd', 'outputs/passwd.txt')\n"
            "open('outputs/run.sh', 'w').write('echo planted')\n"
            "try:\n"
            "    open('written-next-to-the-notebook.txt', 'w')\n"
            "except OSError as exc:\n"
            "    print('read-only', exc.errno)\n"
            "print(sales.amount.sum(), os.getuid() != 0, sorted(os.listdir('outputs')))")
    assert reply["content"]["status"] == "ok", reply["content"]
    printed = "".join(m["content"].get("text", "") for m in messages).split("\n")
    assert printed[0] == "read-only 30"  # EROFS: the notebook's folder is read-only
    # The kernel sees only its own outputs/, not what the host kept there before.
    assert printed[1] == "7 True ['by_region.csv', 'notes.txt', 'passwd.txt', 'run.sh']"
    assert not [c for c in client.containers.list(all=True, filters={"label": LABEL})
                if c.labels.get(PID_LABEL) == str(os.getpid())]
    # outputs/ outlives the kernel, through the host's file rules: no link, no script.
    kept = notebook_dir / "outputs"
    assert sorted(p.name for p in kept.iterdir()) == ["by_region.csv", "earlier.csv",
                                                       "notes.txt"]
    assert (kept / "by_region.csv").read_text() == "region,amount\nEU,3\nUS,4\n"
    assert not any(p.is_symlink() for p in kept.iterdir())


async def test_plotly_figures_show_on_the_sandbox_kernel_without_a_traceback(client, tmp_path):
    async with _notebook_kernel(*_notebook_folder(tmp_path)) as kernel:
        reply, messages = await _run_cell(
            kernel, "import plotly.express as px\n"
                    "px.bar(x=['a', 'b'], y=[1, 3], title='Counts').show()")
    assert reply["content"]["status"] == "ok", reply["content"].get("evalue")
    assert not [m for m in messages if m["msg_type"] in ("error", "stream")]
    shown = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
    figure = shown[0]["application/vnd.plotly.v1+json"]
    assert figure["layout"]["title"]["text"] == "Counts"
    assert [trace["type"] for trace in figure["data"]] == ["bar"]


async def test_a_plotly_figure_in_an_analysis_is_left_out_with_a_notice_not_an_error(client,
                                                                                     tips):
    """The results stage keeps images, metrics and text: a plotly figure is named as left out
    (docs/sandbox.md, the kernelspec), and the analysis succeeds."""
    code = ("import plotly.express as px\n"
            "from jupyter_analyst.runtime import save_metrics\n"
            "px.scatter(df, x='total_bill', y='tip', title='Tips').show()\n"
            "save_metrics({'rows': len(df)})\n")
    async with PythonAnalysisAgent(backend="docker", model="offline") as agent:
        session = agent.session("correlation between tip and total bill", tips)
        await session.prepare()
        result = await session.run(code)
    assert result.success, result.error
    assert result.metrics == {"rows": 244} and result.visualizations == []
    assert "Left out: an output of a type that is not shown: application/vnd.plotly.v1+json" \
        in result.notices


# -- the user's path ---------------------------------------------------------------------
def test_analyze_magic_runs_in_docker_and_returns_a_plot(client, tips):
    shell = analyst_shell(model="offline", backend="auto")
    shell.user_ns["df"] = tips
    try:
        with capture_output() as captured:
            shell.run_cell_magic("analyze", "df --yes", "Show the distribution of total_bill")
        result = shell.user_ns["_analysis"]
        assert result.success, result.error
        assert result.backend == "docker"
        assert result.visualizations and result.visualizations[0]["format"] == "png"
        assert any("image/png" in output.data for output in captured.outputs)
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    assert not [c for c in client.containers.list(all=True, filters={"label": LABEL})
                if c.labels.get(PID_LABEL) == str(os.getpid())]
