"""The approval panel driven headless with ``Button.click()`` against a real local kernel.

Every path of the state machine: run, edit then run, edit into unsafe code, regenerate,
cancel (while generating, while awaiting approval and while asking for a fix), an error in
the code, a fix proposed as a diff that runs only once approved (from Claude over the real
SDK and the local Messages API server), a fix the validator refuses, the bound on fixes, a
generation error, and clicks while work is under way.
"""

from __future__ import annotations

import asyncio
import html
import re
import time

import pytest
from conftest import StaticGenerator
from llm_server import analysis, insights, llm_server  # noqa: F401  (llm_server is a fixture)

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.datasets import load
from jupyter_analyst.errors import NotUnderstoodError
from jupyter_analyst.generation import CodeGenerator
from jupyter_analyst.ui import ApprovalPanel
from jupyter_analyst.ui.panel import (
    AWAITING_APPROVAL,
    CANCELLED,
    DONE,
    FAILED,
    GENERATING,
    REPAIRING,
    RUNNING,
)

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

WAIT = 120  # seconds; a cold local kernel starts in a few

PLOT_AND_METRICS = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics

print("bills:", len(tips))
save_metrics({"mean_bill": float(tips["total_bill"].mean()), "rows": len(tips)})
fig, ax = plt.subplots()
ax.hist(tips["total_bill"], bins=20)
ax.set_title("Bills")
"""


@pytest.fixture
def tips_frames():
    return {"tips": load("tips")}


@pytest.fixture
def make_panel(tips_frames):
    """A panel on a fresh local-backend agent; the agents are cleaned up after the test."""
    agents = []

    def make(generator: CodeGenerator | None, max_repairs: int = 2,
             **options) -> tuple[ApprovalPanel, list]:
        """``generator=None``: the agent's default (Claude when a key is in the environment)."""
        agent = PythonAnalysisAgent(backend="local", generator=generator, max_repairs=max_repairs)
        agents.append(agent)
        results: list = []
        session = agent.session("How big are the bills?", tips_frames, **options)
        panel = ApprovalPanel(session, on_result=results.append)
        panel.show()
        return panel, results

    yield make
    for agent in agents:
        agent.cleanup()


def eventually(condition, timeout: float = WAIT) -> bool:
    """Poll ``condition`` for things that have no future to wait on (live output, the clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def texts(panel: ApprovalPanel) -> str:
    """Everything the Output widget would show as text or HTML, joined."""
    parts = []
    for output in panel.output.outputs:
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def diff_text(panel: ApprovalPanel) -> str:
    """The proposed fix's diff as the page shows it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub("</div>", "\n", panel.diff.value)))


def mimes(panel: ApprovalPanel) -> set[str]:
    return {mime for output in panel.output.outputs for mime in output.get("data", {})}


def buttons(panel: ApprovalPanel) -> dict[str, bool]:
    """Which buttons are enabled."""
    return {b.description: not b.disabled for b in
            (panel.run_button, panel.edit_button, panel.regenerate_button, panel.cancel_button)}


def test_run_streams_stdout_then_shows_plot_metrics_and_binds_result(make_panel):
    panel, results = make_panel(StaticGenerator(PLOT_AND_METRICS))
    assert panel.wait(WAIT) == AWAITING_APPROVAL
    assert "bills:" in panel.code_view.value and "risk: safe" in panel.safety.value
    assert "fixed code for a test" in panel.explanation.value
    assert panel.details.selected_index == 0  # the code is open for review
    assert panel.details.header.expanded and panel.details.content.layout.display is None
    assert "static" in panel.status.value  # which generator wrote it
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": True}
    assert not panel.status.busy  # a kernel restart now ends nothing under way

    panel.run_button.click()
    assert panel.status.busy  # ...while the code runs, it would
    assert panel.wait(WAIT) == DONE
    assert not panel.status.busy
    assert panel.follow_up_button.layout.display == "none"  # no magic line to follow up with
    assert panel.output.outputs[0] == {"output_type": "stream", "name": "stdout",
                                       "text": "bills: 244\n"}
    assert {"image/png", "text/html", "text/markdown"} <= mimes(panel)
    assert "mean_bill" in texts(panel) and "19.79" in texts(panel)
    assert panel.details.selected_index is None  # collapsed after Run
    assert panel.details.content.layout.display == "none"
    assert not any(buttons(panel).values()) and panel.buttons.layout.display == "none"
    assert panel.status.value.startswith("✓ Done")
    assert len(results) == 1 and results[0] is panel.result
    assert results[0].success and results[0].metrics["rows"] == 244


def test_edit_then_run_runs_the_edited_code(make_panel):
    panel, results = make_panel(StaticGenerator(PLOT_AND_METRICS))
    panel.wait(WAIT)
    panel.edit_button.click()
    assert panel.code_box.children == (panel.editor,)
    assert panel.editor.value == PLOT_AND_METRICS
    edited = ("from jupyter_analyst.runtime import save_metrics\n"
              "save_metrics({'largest_party': int(tips['size'].max())})\n")
    panel.editor.value = edited
    assert panel.report.allowed and not panel.run_button.disabled

    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert results[0].code == edited
    assert results[0].metrics == {"largest_party": 6}
    assert panel.code_box.children == (panel.code_view,)  # back to the read-only view
    assert "largest_party" in panel.code_view.value


def test_edit_into_unsafe_code_cannot_run(make_panel):
    panel, results = make_panel(StaticGenerator(PLOT_AND_METRICS))
    panel.wait(WAIT)
    panel.edit_button.click()
    panel.editor.value = "import pandas as pd\nimport os\nprint(os.listdir('.'))\n"
    assert panel.report.risk_level.value == "high"
    assert "risk: high · cannot run" in panel.safety.value
    assert "line 2" in panel.safety.value and "os" in panel.safety.value
    assert "risk: high" in panel.details.get_title(0)
    assert panel.run_button.disabled

    panel.run_button.click()  # a click that reaches the kernel anyway is refused too
    assert panel.state == AWAITING_APPROVAL and results == []
    assert panel.session.attempts == []  # nothing reached the kernel

    panel.editor.value = "print(len(tips))\n"  # fixing it makes it runnable again
    assert panel.report.allowed and not panel.run_button.disabled
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert "244" in texts(panel)


def test_regenerate_asks_for_fresh_code_and_runs_nothing(make_panel):
    generator = StaticGenerator("print('first')\n", "print('second')\n")
    panel, results = make_panel(generator)
    panel.wait(WAIT)
    assert "first" in panel.code_view.value

    panel.regenerate_button.click()
    assert panel.wait(WAIT) == AWAITING_APPROVAL
    assert "second" in panel.code_view.value and "first" not in panel.code_view.value
    assert [r.fresh for r in generator.requests] == [False, True]
    assert results == [] and panel.session.attempts == []


def test_cancel_discards_the_code(make_panel):
    panel, results = make_panel(StaticGenerator(PLOT_AND_METRICS))
    panel.wait(WAIT)
    panel.cancel_button.click()
    assert panel.state == CANCELLED
    assert not any(buttons(panel).values())
    assert panel.status.value.startswith("Cancelled")
    panel.run_button.click()
    assert panel.state == CANCELLED and results == [] and panel.session.attempts == []


class StuckGenerator(CodeGenerator):
    """Generates until cancelled, recording that the cancellation reached it."""

    name = "stuck"

    def __init__(self):
        self.cancelled = False

    async def generate(self, request):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def insights(self, request, metrics, output):
        return [], {}


def test_cancel_while_generating_stops_the_generator(make_panel):
    generator = StuckGenerator()
    panel, results = make_panel(generator)
    assert panel.state == GENERATING
    assert buttons(panel) == {"Run": False, "Edit": False, "Regenerate": False, "Cancel": True}
    assert panel.details.layout.display == "none"  # no empty code section while generating
    assert eventually(lambda: panel.status.value.startswith("Generating code with stuck … 1 s"), 5)
    panel.cancel_button.click()
    assert panel.wait(5) == CANCELLED
    panel.agent.submit(asyncio.sleep(0.1)).result(5)  # let the loop deliver the cancellation
    assert generator.cancelled and results == []


def test_error_in_code_shows_failing_line_and_allows_another_try(make_panel):
    failing = "total = tips['total_bill'].sum()\nratio = total / missing_name\n"
    panel, results = make_panel(StaticGenerator(failing))
    panel.wait(WAIT)
    panel.run_button.click()
    assert panel.wait(WAIT) == FAILED
    shown = texts(panel)
    assert "NameError" in shown and "line 2" in shown and "ratio = total / missing_name" in shown
    assert panel.details.selected_index == 0  # the code is shown again beside the error
    assert panel.status.value.startswith("✖ The analysis failed")
    assert not results[0].success and panel.repairs == 0  # this generator cannot repair
    assert panel.diff.value == ""
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": False}

    panel.edit_button.click()
    panel.editor.value = "total = tips['total_bill'].sum()\nprint(round(total / len(tips), 2))\n"
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert "19.79" in texts(panel) and "NameError" not in texts(panel)
    assert len(results) == 2 and results[1].success


BROKEN = 'by_day = tips.groupby("day", observed=True)["tips"].mean()\nprint(by_day)\n'
FIX = """\
from jupyter_analyst.runtime import save_metrics, save_table
by_day = tips.groupby("day", observed=True)["tip"].mean()
print("fixed:", by_day.idxmax())
save_table(by_day, "by_day")
save_metrics({"best_day": by_day.idxmax(), "best_mean_tip": float(by_day.max())})
"""


@pytest.mark.llm
def test_claude_fix_is_shown_as_a_diff_and_runs_only_when_approved(make_panel, llm_server,
                                                                   tips_frames):
    llm_server.script(analysis(BROKEN), analysis(FIX, "Uses the tip column."),
                      insights("Sunday has the best tips."))
    panel, results = make_panel(None)  # Claude: the key and base URL point at the test server
    assert panel.wait(WAIT) == AWAITING_APPROVAL and panel.agent.generator.can_repair
    assert panel.diff.value == ""  # a first proposal is not a fix
    panel.run_button.click()
    assert panel.wait(WAIT) == AWAITING_APPROVAL  # failed, asked for a fix, and stopped there

    # The error with its failing line, then the fix as a diff against the code that failed.
    shown = texts(panel)
    assert "KeyError" in shown and "line 1" in shown and '["tips"].mean()' in shown
    diff = diff_text(panel)
    assert '-by_day = tips.groupby("day", observed=True)["tips"].mean()' in diff
    assert '+by_day = tips.groupby("day", observed=True)["tip"].mean()' in diff
    assert "--- failed code" in diff and "+++ proposed fix" in diff
    assert "save_table" in panel.code_view.value
    assert "Uses the tip column." in panel.explanation.value
    assert panel.details.get_title(0) == "Proposed fix · risk: safe"
    assert panel.status.value.startswith("Waiting for your approval: review the proposed fix")
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": True}
    [repair_request] = llm_server.bodies()[1:]
    assert "<previous_attempts>" in repair_request["messages"][0]["content"]
    assert "KeyError" in repair_request["messages"][0]["content"]

    # Nothing of the fix ran: no output of it, no file it writes, one attempt so far.
    assert "fixed:" not in shown
    assert not (panel.agent.sandbox.output_dir / "by_day.csv").exists()
    assert len(results) == 1 and not results[0].success and len(results[0].attempts) == 1

    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    result = results[-1]
    assert result is panel.result and result.success and result.code == FIX
    expected = tips_frames["tips"].groupby("day", observed=True)["tip"].mean()
    assert result.metrics == {"best_day": expected.idxmax(),
                              "best_mean_tip": pytest.approx(expected.max())}
    assert (panel.agent.sandbox.output_dir / "by_day.csv").exists()
    assert f"fixed: {expected.idxmax()}" in texts(panel) and "2 attempts" in texts(panel)
    # The whole story: the failed try first, then the approved fix; every generation's tokens.
    assert [a.code for a in result.attempts] == [BROKEN, FIX]
    assert "KeyError" in result.attempts[0].error and result.attempts[1].error is None
    assert result.usage["input_tokens"] == 3000  # first code, the fix, the insights
    assert len(llm_server.requests) == 3


def test_fix_the_validator_refuses_cannot_run(make_panel):
    generator = StaticGenerator("print(tips['bill'].sum())\n", "import os\nprint(os.getcwd())\n",
                                can_repair=True)
    panel, results = make_panel(generator)
    panel.wait(WAIT)
    panel.run_button.click()
    assert panel.wait(WAIT) == AWAITING_APPROVAL
    assert "getcwd" in panel.code_view.value and "+import os" in diff_text(panel)
    assert "risk: high · cannot run" in panel.safety.value
    assert buttons(panel) == {"Run": False, "Edit": True, "Regenerate": True, "Cancel": True}
    panel.run_button.click()  # a click that reaches the kernel anyway is refused too
    assert panel.state == AWAITING_APPROVAL and len(results) == 1

    panel.edit_button.click()  # the user repairs the fix; the diff follows the edit
    panel.editor.value = "print(tips['total_bill'].sum())\n"
    assert "+print(tips['total_bill'].sum())" in diff_text(panel) and not panel.run_button.disabled
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert "4827.77" in texts(panel)
    assert [a.error is None for a in results[-1].attempts] == [False, True]


class SlowFixer(StaticGenerator):
    """Writes failing code at once, then takes forever over the fix (until cancelled)."""

    def __init__(self):
        super().__init__("print(tips['bill'].sum())\n", can_repair=True)
        self.cancelled = False

    async def generate(self, request):
        if request.failures:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return await super().generate(request)


def test_cancel_while_asking_for_a_fix(make_panel):
    generator = SlowFixer()
    panel, results = make_panel(generator)
    panel.wait(WAIT)
    panel.run_button.click()
    assert eventually(lambda: panel.state == REPAIRING)
    assert eventually(lambda: panel.status.value.startswith(
        "The analysis failed; asking static for a fix (1 of at most 2) … "), 5)
    assert buttons(panel) == {"Run": False, "Edit": False, "Regenerate": False, "Cancel": True}
    assert "KeyError" in texts(panel)  # the error is shown while the fix is being written
    panel.cancel_button.click()
    assert panel.wait(5) == CANCELLED
    panel.agent.submit(asyncio.sleep(0.1)).result(5)  # let the loop deliver the cancellation
    assert generator.cancelled
    assert panel.status.value.startswith("Cancelled: no fix was run")
    assert not any(buttons(panel).values()) and panel.diff.value == ""
    assert len(results) == 1 and not results[0].success  # the failed run stays the result


def test_fixes_are_bounded_by_max_repairs(make_panel):
    generator = StaticGenerator("print(tips['bill'].sum())\n", "print(tips['bills'].sum())\n",
                                can_repair=True)
    panel, results = make_panel(generator, max_repairs=1)
    panel.wait(WAIT)
    panel.run_button.click()
    assert panel.wait(WAIT) == AWAITING_APPROVAL  # the one fix
    panel.run_button.click()
    assert panel.wait(WAIT) == FAILED  # it failed too, and no second fix is asked for
    assert len(generator.requests) == 2 and panel.repairs == 1
    assert "No more fixes are proposed (1 asked for)" in panel.status.value
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": False}
    assert [len(r.attempts) for r in results] == [1, 2]
    assert all("KeyError" in a.error for a in results[-1].attempts)


def test_generation_error_is_explained_and_regenerate_stays_available(make_panel):
    class Puzzled(StaticGenerator):
        async def generate(self, request):
            self.requests.append(request)
            raise NotUnderstoodError("The offline generator did not understand the question.",
                                     "Rephrase it or set ANTHROPIC_API_KEY to use Claude.")

    panel, results = make_panel(Puzzled())
    assert panel.wait(WAIT) == FAILED
    assert "did not understand" in texts(panel) and "ANTHROPIC_API_KEY" in texts(panel)
    assert panel.status.value.startswith("✖ No code to run")
    assert buttons(panel) == {"Run": False, "Edit": False, "Regenerate": True, "Cancel": False}
    panel.run_button.click()
    panel.edit_button.click()
    assert panel.state == FAILED and results == [] and not panel.editing


def test_second_click_while_running_does_nothing_and_stdout_streams_live(make_panel):
    code = "import time\nprint('started')\ntime.sleep(3)\nprint('finished')\n"
    generator = StaticGenerator(code)
    panel, results = make_panel(generator)
    panel.wait(WAIT)
    panel.run_button.click()
    # Disabled at once, before the kernel answers; only Stop is offered.
    assert buttons(panel) == {"Run": False, "Edit": False, "Regenerate": False, "Stop": True}
    for button in (panel.run_button, panel.edit_button, panel.regenerate_button):
        button.click()
    # stdout arrives while the code still runs, not with the result
    assert eventually(lambda: "started" in texts(panel))
    assert panel.state == RUNNING and "finished" not in texts(panel)
    assert panel.wait(WAIT) == DONE
    assert len(results) == 1 and len(generator.requests) == 1
    assert texts(panel).count("started") == 1 and "finished" in texts(panel)


def test_panel_given_a_proposal_starts_at_review(tips_frames):
    """``%%analyze --insert`` generates inside the magic call and hands the proposal over."""
    generator = StaticGenerator("print(tips.shape)\n")
    agent = PythonAnalysisAgent(backend="local", generator=generator)
    try:
        session = agent.session("Shape?", tips_frames)
        agent.submit(session.prepare()).result(WAIT)
        panel = ApprovalPanel(session)
        panel.show()
        assert panel.state == AWAITING_APPROVAL and len(generator.requests) == 1
        assert "shape" in panel.code_view.value and not panel.run_button.disabled
        panel.run_button.click()
        assert panel.wait(WAIT) == DONE
        assert "(244, 7)" in texts(panel)
    finally:
        agent.cleanup()


def test_stop_interrupts_running_code_and_the_next_run_works(make_panel):
    generator = StaticGenerator("import time\nprint('sleeping')\ntime.sleep(60)\n")
    panel, results = make_panel(generator)
    panel.wait(WAIT)
    panel.run_button.click()
    assert eventually(lambda: "sleeping" in texts(panel))
    started = time.monotonic()
    panel.cancel_button.click()  # labelled Stop while the code runs
    assert panel.state == FAILED and panel.status.value.startswith("✖ Stopped")
    assert buttons(panel)["Run"] and results == []
    panel.edit_button.click()
    panel.editor.value = "print('after the stop', len(tips))\n"
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert time.monotonic() - started < 30  # not the 60 s the stopped code wanted
    assert "after the stop 244" in texts(panel)


def test_after_done_the_code_can_be_edited_and_run_again(make_panel):
    panel, results = make_panel(StaticGenerator("print(len(tips))\n"))
    panel.wait(WAIT)
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert panel.done_bar.layout.display is None and panel.buttons.layout.display == "none"
    panel.rerun_button.click()
    assert panel.state == AWAITING_APPROVAL and panel.editing
    panel.editor.value = "print(tips.shape)\n"
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE and len(results) == 2
    assert results[1].code == "print(tips.shape)\n" and "(244, 7)" in texts(panel)


def test_the_code_section_opens_and_closes_from_its_header():
    """The header (a button in the page) and the panel's selected_index stay one state."""
    from ipywidgets import HTML

    from jupyter_analyst.ui.editor import Section

    section = Section(HTML("code"))
    assert section.selected_index is None and section.content.layout.display == "none"
    section.header.expanded = True  # what a click or Enter on the header sends
    assert section.selected_index == 0 and section.content.layout.display is None
    section.selected_index = None
    assert not section.header.expanded and section.content.layout.display == "none"
    section.set_title(0, "Generated code · risk: safe")
    assert section.get_title(0) == section.header.title == "Generated code · risk: safe"
