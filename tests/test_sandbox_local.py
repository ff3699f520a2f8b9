"""The local backend: a real ipykernel over ipc, warm, confined, recoverable."""

import asyncio
import os
import time

import pytest

from jupyter_analyst.sandbox import Execution, ExecutionStatus, SandboxLimits, local_sandbox

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
async def sandbox():
    box = local_sandbox(SandboxLimits(memory=1024**3, timeout=60))
    await box.start()
    yield box
    root = box.root
    await box.shutdown()
    assert not root.exists()  # nothing left behind


async def run(box, code, **kwargs):
    return await box.execute(code, **kwargs)


def text_of(execution):
    return "".join(o.get("text", "") for o in execution.outputs if o["output_type"] == "stream")


async def test_uses_ipc_sockets_in_the_private_directory(sandbox):
    info = sandbox.manager.get_connection_info()
    assert info["transport"] == "ipc"
    assert info["ip"].startswith(str(sandbox.root))


async def test_frames_are_bound_under_their_names_and_written_once(sandbox, tips):
    written = sandbox.frames_written
    await sandbox.bind_frames({"tips": tips})
    await sandbox.bind_frames({"tips": tips, "again": tips})
    assert sandbox.frames_written == written + 1
    result = await run(sandbox, "print(tips.shape, again.shape)")
    assert text_of(result).strip() == f"{tips.shape} {tips.shape}"


async def test_in_place_changes_do_not_leak_into_the_next_analysis(sandbox, tips):
    await sandbox.bind_frames({"tips": tips})
    await run(sandbox, "tips['tip'] = 0; tips.drop(columns=['day'], inplace=True)")
    await sandbox.bind_frames({"tips": tips})
    result = await run(sandbox, "print(tips['tip'].sum() > 0, 'day' in tips)")
    assert text_of(result).strip() == "True True"


async def test_kernel_has_no_network_and_no_secrets(sandbox, monkeypatch):
    result = await run(sandbox, "import socket, os\n"
                                "print(sorted(n for _, n in socket.if_nameindex()))\n"
                                "print(sorted(k for k in os.environ\n"
                                "             if 'KEY' in k or 'TOKEN' in k))")
    interfaces, secrets = text_of(result).strip().splitlines()
    assert "network: isolated" in sandbox.isolation_report().splitlines()
    assert interfaces == "['lo']"
    assert secrets == "[]"


async def test_working_directory_is_the_sandbox_root(sandbox):
    result = await run(sandbox, "import os; print(os.getcwd()); print(sorted(os.listdir('.')))")
    cwd, listing = text_of(result).strip().splitlines()
    assert os.path.realpath(cwd) == os.path.realpath(sandbox.root)
    assert "outputs" in listing and "data" in listing


async def test_memory_limit_gives_memory_error_and_kernel_survives(sandbox):
    result = await run(sandbox, "x = bytearray(3 * 1024**3)")
    assert result.status == "error" and result.error["ename"] == "MemoryError"
    assert text_of(await run(sandbox, "print('alive')")).strip() == "alive"


async def test_timeout_interrupts_and_kernel_stays_warm(sandbox):
    await run(sandbox, "warm_marker = 42")
    result = await run(sandbox, "while True: pass", timeout=2)
    assert result.status == "timeout" and not result.restarted
    assert text_of(await run(sandbox, "print(warm_marker)")).strip() == "42"


async def test_interrupt_resistant_code_is_stopped_by_a_restart(sandbox):
    code = ("import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "while True: time.sleep(0.1)")
    result = await run(sandbox, code, timeout=2)
    assert result.status == "timeout" and result.restarted
    assert text_of(await run(sandbox, "print('back')")).strip() == "back"


def test_an_execution_moves_only_along_its_transition_table():
    execution = Execution()
    assert execution.status is ExecutionStatus.OK and not execution.repairable
    execution.end(ExecutionStatus.ERROR)
    assert execution.repairable and execution.status == "error" and f"{execution.status}" == "error"
    execution.end(ExecutionStatus.TIMEOUT)  # the error came, then the kernel hung
    assert not execution.repairable
    with pytest.raises(RuntimeError, match="no transition from timeout to ok"):
        execution.end(ExecutionStatus.OK)


async def test_dead_kernel_is_restarted(sandbox, tips):
    result = await run(sandbox, "import os; os._exit(3)", timeout=30)
    assert result.status == "died" and result.restarted
    await sandbox.bind_frames({"tips": tips})
    assert text_of(await run(sandbox, "print(len(tips))")).strip() == str(len(tips))


async def test_file_size_limit(sandbox):
    small = local_sandbox(SandboxLimits(file_size=1024 * 1024, timeout=30))
    try:
        await small.start()
        result = await run(small, "open('outputs/big.bin', 'wb').write(b'x' * (2 * 1024 * 1024))")
        assert result.status == "error"
        assert "File too large" in result.error["evalue"] or result.error["ename"] == "OSError"
    finally:
        await small.shutdown()


async def test_each_analysis_starts_from_a_clean_namespace(sandbox, tips):
    await sandbox.bind_frames({"tips": tips})
    await run(sandbox, "leftover = 1\nimport numpy as np")
    await sandbox.bind_frames({"tips": tips})
    result = await run(sandbox,
                       "print('leftover' in dir(), 'np' in dir(), 'save_metrics' in dir())")
    assert text_of(result).strip() == "False False True"


async def test_cancelled_execution_interrupts_the_kernel(sandbox):
    task = asyncio.ensure_future(
        run(sandbox, "import time\nwhile True: time.sleep(0.05)", timeout=60))
    await asyncio.sleep(1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    assert text_of(await run(sandbox, "print('free')", timeout=20)).strip() == "free"
    assert time.monotonic() - started < 10  # the kernel was not still busy with the loop
