"""The approval panel driven headless with ``Button.click()`` against a real local kernel.

Every path of the state machine: run, edit then run, edit into unsafe code, regenerate,
cancel (while generating and while awaiting approval), an error in the code, a repair
shown as a diff, a generation error, and clicks while work is under way.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import StaticGenerator

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.datasets import load
from jupyter_analyst.errors import NotUnderstoodError
from jupyter_analyst.generation import CodeGenerator
from jupyter_analyst.ui import ApprovalPanel
from jupyter_analyst.ui.panel import AWAITING_APPROVAL, CANCELLED, DONE, FAILED, GENERATING, RUNNING

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

    def make(generator: CodeGenerator, **options) -> tuple[ApprovalPanel, list]:
        agent = PythonAnalysisAgent(backend="local", generator=generator)
        agents.append(agent)
        results: list = []
        panel = ApprovalPanel(agent, "How big are the bills?", tips_frames,
                              on_result=results.append, **options)
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
    assert "static" in panel.status.value  # which generator wrote it
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": True}

    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert panel.output.outputs[0] == {"output_type": "stream", "name": "stdout", "text": "bills: 244\n"}
    assert {"image/png", "text/html", "text/markdown"} <= mimes(panel)
    assert "mean_bill" in texts(panel) and "19.79" in texts(panel)
    assert panel.details.selected_index is None  # collapsed after Run
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
    assert panel.agent.sandbox is None  # no kernel was even started

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
    assert results == [] and panel.agent.sandbox is None


def test_cancel_discards_the_code(make_panel):
    panel, results = make_panel(StaticGenerator(PLOT_AND_METRICS))
    panel.wait(WAIT)
    panel.cancel_button.click()
    assert panel.state == CANCELLED
    assert not any(buttons(panel).values())
    assert panel.status.value.startswith("Cancelled")
    panel.run_button.click()
    assert panel.state == CANCELLED and results == [] and panel.agent.sandbox is None


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
    assert eventually(lambda: panel.status.value.startswith("⏳ generating code with stuck · 1 s"), 5)
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
    assert not results[0].success
    assert buttons(panel) == {"Run": True, "Edit": True, "Regenerate": True, "Cancel": False}

    panel.edit_button.click()
    panel.editor.value = "total = tips['total_bill'].sum()\nprint(round(total / len(tips), 2))\n"
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    assert "19.79" in texts(panel) and "NameError" not in texts(panel)
    assert len(results) == 2 and results[1].success


def test_repaired_code_is_shown_as_a_diff(make_panel):
    failing = "mean = tips['bill'].mean()\nprint(mean)\n"
    repaired = "mean = tips['total_bill'].mean()\nprint(mean)\n"
    panel, results = make_panel(StaticGenerator(failing, repaired, can_repair=True))
    panel.wait(WAIT)
    panel.run_button.click()
    assert panel.wait(WAIT) == DONE
    diffs = [o["data"]["text/plain"] for o in panel.output.outputs
             if o["output_type"] == "display_data" and "repaired (ran)" in o["data"].get("text/plain", "")]
    assert len(diffs) == 1
    assert "-mean = tips['bill'].mean()" in diffs[0] and "+mean = tips['total_bill'].mean()" in diffs[0]
    assert len(results[0].attempts) == 2 and results[0].code == repaired
    assert "total_bill" in panel.code_view.value  # the view shows the code that ran


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
    assert not any(buttons(panel).values())  # disabled at once, before the kernel answers
    for button in (panel.run_button, panel.edit_button, panel.regenerate_button, panel.cancel_button):
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
        proposal = agent.submit(agent.prepare("Shape?", tips_frames)).result(WAIT)
        panel = ApprovalPanel(agent, "Shape?", tips_frames, proposal=proposal)
        panel.show()
        assert panel.state == AWAITING_APPROVAL and len(generator.requests) == 1
        assert "shape" in panel.code_view.value and not panel.run_button.disabled
        panel.run_button.click()
        assert panel.wait(WAIT) == DONE
        assert "(244, 7)" in texts(panel)
    finally:
        agent.cleanup()
