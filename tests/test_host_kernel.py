"""End to end on a real local kernel: code that beat the validator sends hostile output.

The code goes straight to the kernel (``KernelSandbox.execute``) and forges iopub
messages with the kernel's own session, as an attacker inside the kernel could:
the host must not raise, must cap and strip what it shows, and must say what it
left out.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import StaticGenerator

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.rendering import display_outputs
from jupyter_analyst.results import Intake
from jupyter_analyst.sandbox import SandboxLimits, local_sandbox
from jupyter_analyst.untrusted import MAX_ERROR_TEXT

pytestmark = pytest.mark.kernel

FORGE = r'''
from IPython import get_ipython
_kernel = get_ipython().kernel
def _forge(kind, raw):
    _kernel.session.send(_kernel.iopub_socket, kind, content=raw,
                         parent=_kernel.get_parent(), ident=_kernel._topic(kind))
'''

HOSTILE = FORGE + r'''
import os
from IPython.display import display
mime = "application/vnd.jupyter-analyst.metrics+json"
_forge("display_data", b'{"data": {"' + mime.encode() + b'": ' + b"[" * 1800 + b"]" * 1800
       + b'}, "metadata": {}}')
_forge("display_data", b'{"data": {"' + mime.encode() + b'": {"rows": ' + b"4" * 9000
       + b'}}, "metadata": {}}')
_forge("stream", b'{"name": "stdin", "text": ["forged ", 7, "stream\\n"]}')
_forge("display_data", b'{"data": ["image/png"], "metadata": "none"}')
_forge("display_data", b'{"data": {"text/plain": {"not": "text"}}, "metadata": []}')
display({mime: "{" * 40 + "}" * 40, "text/plain": "deep as text"}, raw=True)
print("sum \x1b]52;c;aG9zdA==\x07\x1b[?25l= 12\x1b]8;;https://example.invalid\x1b\\here"
      "\x1b]8;;\x1b\\\rIn [9]: fake\x9b2J")
os.symlink(HOST_FILE, "outputs/copied.csv")
# The bubblewrap sandbox cannot see the host file (a hard link to it fails), so the second
# name is given to a file of the kernel's own, kept in a folder the host does not read.
os.makedirs("outputs/kept", exist_ok=True)
with open("outputs/kept/anchor.csv", "w") as f:
    f.write("host,secret\n1,2\n")
os.link("outputs/kept/anchor.csv", "outputs/twin.csv")
os.mkfifo("outputs/wait.txt")
with open("outputs/holes.csv", "wb") as f:
    f.truncate(4 * 1024 * 1024)
with open("outputs/fine.csv", "w") as f:
    f.write("a,b\n1,2\n")
'''


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory):
    host_file = tmp_path_factory.mktemp("host") / "private.csv"
    host_file.write_text("host,secret\n1,2\n")
    box = local_sandbox(SandboxLimits(memory=1024**3, timeout=60))
    await box.start()
    box.host_file = host_file
    yield box
    await box.shutdown()


async def test_forged_and_hostile_output_is_reported_not_raised(sandbox):
    sandbox.clear_outputs()
    intake = Intake()
    shown = []
    code = f"HOST_FILE = {str(sandbox.host_file)!r}\n" + HOSTILE
    execution = await sandbox.execute(code, on_output=lambda o: shown.append(intake.clean(o)))
    assert execution.status == "ok", execution.error
    collected = intake.collect(sandbox.output_dir)
    notices = " ".join(collected.notices)
    assert "nested deeper than 32 levels" in notices  # both the forged and the text form
    assert "longer than 40 digits" in notices
    assert collected.metrics == {}
    printed = collected.stdout
    assert "forged stream" in printed
    assert "\x1b" not in printed and "\x9b" not in printed and "aG9zdA" not in printed
    assert "sum = 12here\nIn [9]: fake" in printed
    assert [d["name"] for d in collected.data_outputs] == ["fine.csv"]
    for name, why in (("copied.csv", "a symbolic link"), ("twin.csv", "a hard link"),
                      ("wait.txt", "a FIFO"), ("holes.csv", "a sparse file")):
        assert f"{name}: {why}" in notices, name
    assert "secret" not in repr(collected)
    assert sandbox.host_file.read_text() == "host,secret\n1,2\n"


async def test_a_forged_error_with_fields_of_the_wrong_type_is_still_an_error(sandbox):
    code = FORGE + ('_forge("error", b\'{"ename": {"x": 1}, "evalue": {"y": [2]}, '
                    '"traceback": "not a list"}\')\n')
    execution = await sandbox.execute(code)
    assert execution.status == "error"
    assert execution.error == {"ename": "Error", "evalue": "", "traceback": []}


@pytest.mark.parametrize("size,shown", [
    (3_000_000, "RuntimeError: QQQ"),  # parsed, then capped
    (20_000_000, "an error message from the sandbox was left out: larger than"),  # not parsed
])
def test_a_huge_exception_message_reaches_the_result_capped(size, shown):
    code = f"raise RuntimeError('Q' * {size})\n"
    with PythonAnalysisAgent(backend="local", generator=StaticGenerator(code)) as agent:
        result = agent.analyze_sync("anything", {"df": pd.DataFrame({"a": [1]})})
    assert not result.success
    assert shown in result.error
    assert len(result.error) < MAX_ERROR_TEXT + 2_000
    for output in display_outputs(result):
        assert all(len(value) < MAX_ERROR_TEXT + 5_000 for value in output["data"].values())
