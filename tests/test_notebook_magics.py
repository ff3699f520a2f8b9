"""``%analyze fix`` and ``--context N``: the user's own notebook in the request.

A real IPython shell runs the cells (``run_cell``, so they are in its history as in a
notebook); Claude is the loopback Messages API server of llm_server.py, reached through
the real SDK, so every assertion reads the request bodies that really left the machine.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time

import pytest
from conftest import analyst_shell, fresh_shell
from IPython.utils.capture import capture_output
from llm_server import (  # noqa: F401 (fixtures)
    analysis,
    chat_analysis,
    insights,
    llm,
    ollama_server,
    server,
)

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.generation.prompts import redact_literals
from jupyter_analyst.notebook import MAX_CONTEXT_CHARS, last_failure, recent_cells
from jupyter_analyst.session import CellFix
from jupyter_analyst.ui import FixPanel
from jupyter_analyst.ui.fix import FixState

pytestmark = [pytest.mark.llm]

BROKEN = "totals = bills.groupby('day')['total bill'].sum()\nprint(totals)"  # as In[] keeps it
FIXED = "totals = bills.groupby('day')['total_bill'].sum()\nprint(totals)\n"
SECRET = "Ada Lovelace"  # a value of the data, quoted by the error the broken cell raises


@pytest.fixture
def shell(server, tips):
    shell = analyst_shell(backend="local", widgets="never")
    shell.user_ns["bills"] = tips
    for name in ("last_type", "last_value", "last_traceback"):  # no error of another test
        if hasattr(sys, name):
            delattr(sys, name)
    shell.rl_next_input = None
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_analyst")


def run(shell, source: str):
    """Run ``source`` as a notebook cell (stored in the history), capturing what it shows."""
    with capture_output() as shown:
        shell.run_cell(source, store_history=True)
    return shown


def next_input(shell) -> str | None:
    """What ``set_next_input`` left for the next cell (a payload in ipykernel's shell)."""
    return shell.rl_next_input


def block(text: str, tag: str, intro: bool = True):
    """The JSON inside a tagged block of a prompt (after its line of introduction)."""
    inside = text.split(f"<{tag}>\n", 1)[1].split(f"\n</{tag}>")[0]
    return json.loads(inside.split("\n", 1)[1] if intro else inside)


def cell_and_traceback(body: dict) -> tuple[str, str]:
    content = body["messages"][0]["content"]
    return block(content, "cell"), block(content, "traceback", intro=False)


def test_fix_sends_the_failing_cell_and_its_traceback_and_the_fix_lands_in_a_new_cell(
        shell, llm):
    run(shell, "x = 1")
    failed = run(shell, BROKEN)
    assert "KeyError" in failed.stdout + failed.stderr
    llm.script(analysis(FIXED, "The column is spelled total_bill."))
    shown = run(shell, "%analyze fix")
    [body] = llm.bodies()
    cell, traceback = cell_and_traceback(body)
    assert cell == BROKEN
    assert "KeyError" in traceback and "Cell In[" in traceback and "'total bill'" in traceback
    assert "\x1b[" not in json.dumps(body)  # no terminal escapes leave the machine
    assert "fix a cell of the user's own Jupyter notebook" in body["system"]
    assert next_input(shell) == FIXED  # a new cell, for the user to run
    assert "-totals = bills.groupby('day')['total bill'].sum()" in shown.stdout
    assert "+totals = bills.groupby('day')['total_bill'].sum()" in shown.stdout
    assert "Risk: safe" in shown.stdout and "nothing has run" in shown.stdout
    assert "totals" not in shell.user_ns  # neither the fix nor the broken cell ran again


def test_in_schema_mode_the_traceback_loses_the_values_it_quotes(shell, llm):
    run(shell, "%config Analyze.privacy = 'schema'")
    broken = "first = bills['sex'].astype(str).iloc[0]\nfloat(first)  # 'note' stays\n"
    failed = run(shell, broken)
    assert "could not convert string to float: 'Female'" in failed.stdout + failed.stderr
    llm.script(analysis("first = bills['sex'].astype(str).iloc[0]\nprint(first)\n"))
    run(shell, "%analyze fix --yes")
    [raw] = llm.raw_bodies()
    cell, traceback = cell_and_traceback(llm.bodies()[0])
    assert cell == broken.rstrip("\n")  # the cell is what is fixed: it is sent as written
    assert "ValueError" in traceback and "could not convert string to float" in traceback
    assert "'note'" in traceback  # words of the cell stay; the data's value does not
    assert "Female" not in raw and "Male" not in raw


def test_a_local_model_fixes_the_cell_through_the_same_request(shell, ollama_server):
    run(shell, "%config Analyze.model = 'ollama:qwen2.5-coder:7b'")
    run(shell, BROKEN)
    ollama_server.script(chat_analysis(FIXED, "The column is spelled total_bill."))
    shown = run(shell, "%analyze fix")
    [body] = ollama_server.bodies()
    assert body["model"] == "qwen2.5-coder:7b"
    assert "fix a cell of the user's own Jupyter notebook" in body["messages"][0]["content"]
    assert block(body["messages"][1]["content"], "cell") == BROKEN
    assert next_input(shell) == FIXED and "Risk: safe" in shown.stdout
    assert "totals" not in shell.user_ns


def test_fix_without_an_error_or_without_a_model_says_so(shell, llm, monkeypatch):
    shown = run(shell, "%analyze fix")
    assert "There is no recent error in this notebook to fix" in shown.stdout
    run(shell, "1 / 0")
    shown = run(shell, "%config Analyze.model = 'offline'\n%analyze fix")
    assert "Fixing a notebook cell needs a language model" in shown.stderr
    assert llm.bodies() == [] and next_input(shell) is None
    with pytest.raises(Exception, match="Use `%analyze fix"):
        shell.run_line_magic("analyze", "fix --model x")


def test_a_refused_fix_is_not_put_into_a_cell(shell, llm):
    run(shell, "1 / 0")
    llm.script(analysis("import os\nos.system('echo hi')\n"))
    shown = run(shell, "%analyze fix")
    assert "refused this fix" in shown.stdout and next_input(shell) is None


def test_the_fix_panel_shows_the_diff_and_its_verdict_and_inserts_only_when_asked(
        server, llm, tips):
    agent = PythonAnalysisAgent(backend="local", use_cache=False)
    shell = fresh_shell()
    try:
        shell.user_ns["bills"] = tips
        run(shell, BROKEN)
        cell = last_failure(shell)
        assert cell is not None and cell.source == BROKEN
        llm.script(analysis(FIXED, "The column is spelled total_bill."))
        fix = CellFix(agent, cell)
        agent.submit(fix.prepare()).result(60)
        panel = FixPanel(fix)
        sent = []  # what the editor sends to the front end, whose insertCell adds the cell
        panel.editor.send = sent.append
        assert "total bill" in panel.diff.value and "total_bill" in panel.diff.value
        assert "risk: safe" in panel.safety.value and not panel.insert_button.disabled
        assert agent.sandbox is None  # nothing ran in a sandbox, nor was one started
        panel.edit_button.click()
        panel.editor.value = "import os\n" + FIXED
        assert panel.insert_button.disabled and "cannot run" in panel.safety.value
        panel.editor.value = FIXED + "print(len(totals))\n"
        assert not panel.insert_button.disabled and "print(len(totals))" in panel.diff.value
        panel.insert_button.click()
        assert sent[-1:] == [{"action": "insert_cell", "code": FIXED + "print(len(totals))\n",
                         "anchor": panel.widget.model_id}]
        assert panel.state == FixState.INSERTED and panel.buttons.layout.display == "none"
        panel.insert_button.click()
        assert [m["action"] for m in sent].count("insert_cell") == 1
    finally:
        agent.cleanup()


def test_context_sends_the_last_cells_and_show_prompt_shows_them(shell, llm):
    run(shell, "import pandas as pd")
    run(shell, "%%analyze bills --yes --model offline\nShow a summary")
    run(shell, "clean = bills.dropna()\nclean['tip_share'] = clean.tip / clean.total_bill")
    run(shell, "# the big spenders\nbig = clean[clean.total_bill > 40]")
    llm.script(analysis("print(bills.shape)\n"), insights("There are 244 rows."))
    run(shell, "%%analyze bills --yes --no-cache --context 2\nUse the cleaned frame from above")
    cells = block(llm.bodies()[0]["messages"][0]["content"], "notebook_cells")
    assert cells == ["clean = bills.dropna()\nclean['tip_share'] = clean.tip / clean.total_bill",
                     "# the big spenders\nbig = clean[clean.total_bill > 40]"]
    shown = run(shell, "%%analyze bills --show-prompt --context 3\nAnd the median?")
    cells = block(shown.stdout, "notebook_cells")
    assert cells[0] == "import pandas as pd" and len(cells) == 3
    assert not any("Show a summary" in c for c in cells)  # %%analyze cells are the conversation
    steps = block(shown.stdout, "conversation")  # the whole thread, as it would be sent
    assert [s["question"] for s in steps] == ["Show a summary", "Use the cleaned frame from above"]
    assert steps[1]["code"] == "print(bills.shape)\n"
    shown = run(shell, "%%analyze bills --show-prompt\nAnd the median?")
    assert "<notebook_cells>\n" not in shown.stdout  # off unless asked for
    run(shell, "%config Analyze.context_cells = 1")
    shown = run(shell, "%%analyze bills --show-prompt\nAnd the median?")
    assert block(shown.stdout, "notebook_cells") == [cells[-1]]


def test_in_schema_mode_context_cells_keep_their_names_but_not_their_values(shell, llm):
    run(shell, f"vip = bills[bills.sex == 'Female']\nnote = '{SECRET}'  # {SECRET} paid 73412")
    shown = run(shell, "%%analyze bills --show-prompt --privacy schema --context 1\n"
                       "Tips of the vip frame")
    [cell] = block(shown.stdout, "notebook_cells")
    assert cell == "vip = bills[bills.sex == '…']\nnote = '…'  # …"
    assert SECRET not in shown.stdout and "73412" not in shown.stdout
    assert "Female" not in shown.stdout


def test_redact_literals_keeps_column_names_and_small_numbers():
    known = {"tips", "total_bill", "day"}
    source = ("x = tips[tips['day'] == 'Sun']['total_bill'] * 100 + 2\n"
              "name = f'{x} from Ada'  # Ada\n")
    assert redact_literals(source, known) == (
        "x = tips[tips['day'] == '…']['total_bill'] * … + 2\nname = '…'  # …\n")
    assert "Ada" not in redact_literals("s = 'unterminated Ada", known)


def test_recent_cells_are_bounded_newest_kept(shell):
    for number in range(8):
        run(shell, "# padding\n" * 400 + f"step_{number} = {number}")
    run(shell, "last = 1")  # stands for the running cell, which is never context
    cells = recent_cells(shell, 8)
    assert cells[-1].endswith("step_7 = 7") and sum(map(len, cells)) <= MAX_CONTEXT_CHARS
    assert 0 < len(cells) < 8
    assert recent_cells(shell, 0) == []


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_in_a_notebook_kernel_insert_as_cell_sends_the_fix_to_the_front_end(llm, tmp_path):
    """A real ipykernel that a Jupyter server might have started; the test is its front end.

    It clicks **Insert as cell** the way JupyterLab does (a comm message to the button)
    and reads the message the editor sends back, which the page turns into a new cell.
    """
    from conftest import SEABORN
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "JPY_SESSION_NAME": str(tmp_path / "fix.ipynb"), "MPLBACKEND": "Agg"}
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    messages: list[dict] = []
    try:
        def execute(code: str) -> dict:
            return client.execute_interactive(code, output_hook=messages.append, timeout=120,
                                              allow_stdin=False)["content"]

        assert execute("%load_ext jupyter_analyst\nimport pandas as pd\n"
                       f"bills = pd.read_csv({str(SEABORN / 'tips.csv')!r})")["status"] == "ok"
        assert execute(BROKEN)["status"] == "error"
        llm.script(analysis(FIXED, "The column is spelled total_bill."))
        assert execute("%analyze fix")["status"] == "ok"
        [body] = llm.bodies()
        assert cell_and_traceback(body)[0] == BROKEN
        opened = {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in messages
                  if m["msg_type"] == "comm_open"}
        [insert] = [comm for comm, state in opened.items()
                    if state.get("description") == "Insert as cell"]
        assert not opened[insert]["disabled"]
        client.shell_channel.send(client.session.msg("comm_msg", {
            "comm_id": insert, "data": {"method": "custom", "content": {"event": "click"}}}))
        sent = []
        deadline = time.monotonic() + 30
        while not sent and time.monotonic() < deadline:
            try:
                message = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            content = message["content"].get("data", {}).get("content", {})
            if message["msg_type"] == "comm_msg" and content.get("action") == "insert_cell":
                sent.append(content)
        assert [m["code"] for m in sent] == [FIXED]
        assert execute("print('totals' in globals())")["status"] == "ok"
        printed = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
        assert printed[-1].strip() == "False"  # the fix did not run: the new cell waits
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_a_negative_context_is_refused_with_the_fix(shell, llm):
    shown = run(shell, "%%analyze bills --context -2\nShow a summary")
    assert "-2 notebook cells cannot be sent along" in shown.stderr
    assert "Use 0 to send none" in shown.stderr and llm.bodies() == []
