"""Claude through the whole pipeline: the agent and the magic on the local sandbox backend.

The real SDK talks to tests/llm_server.py; the returned code runs in a real kernel.
"""

from __future__ import annotations

import json

import pytest
from llm_server import (  # noqa: F401
    MessagesServer,
    agent,
    analysis,
    error,
    insights,
    llm,  # agent, llm and server are fixtures
    server,
)

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.generation.claude import DEFAULT_MODEL, ClaudeGenerator

pytestmark = [pytest.mark.llm, pytest.mark.kernel]

GOOD = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics
by_day = tips.groupby("day", observed=True)["tip"].mean()
save_metrics({"mean_tip": tips["tip"].mean(), "best_day": by_day.idxmax()})
by_day.plot.bar()
plt.title("Average tip by day")
plt.ylabel("tip")
"""
WRONG_COLUMN = 'print(tips["tips"].mean())\n'
REFUSED = 'import os\nprint(os.listdir("."))\n'


def previous_attempts(body: dict) -> list[dict]:
    content = body["messages"][0]["content"]
    block = content.split("<previous_attempts>\n", 1)[1].split("\n</previous_attempts>")[0]
    return json.loads(block.split("\n", 1)[1])


async def test_free_form_question_returns_the_plot(agent, llm, tips):
    llm.script(analysis(GOOD, "Averages tips per day and plots them.", input_tokens=2000,
                        output_tokens=300),
               insights("The average tip is 3.00.", "Sunday has the highest mean tip.",
                        input_tokens=500, output_tokens=60))
    result = await agent.analyze("Which day brings the best tips?", {"tips": tips})
    assert result.success, result.error
    assert isinstance(agent.generator, ClaudeGenerator)
    assert result.generator["model"] == DEFAULT_MODEL
    assert [v["title"] for v in result.visualizations] == ["Average tip by day"]
    assert result.visualizations[0]["format"] == "png"
    assert result.metrics["mean_tip"] == pytest.approx(tips.tip.mean())
    assert len(result.attempts) == 1 and result.attempts[0].error is None
    assert result.usage["input_tokens"] == 2500 and result.usage["output_tokens"] == 360
    assert result.usage["cost_usd"] == pytest.approx((2500 * 2 + 360 * 10) / 1e6)
    assert result.insights == ["The average tip is 3.00.", "Sunday has the highest mean tip."]
    assert result.explanation == "Averages tips per day and plots them."


async def test_repair_round_trip_ends_in_success(agent, llm, tips):
    llm.script(analysis(WRONG_COLUMN), analysis(REFUSED), analysis(GOOD),
               insights("The average tip is 2.99."))
    result = await agent.analyze("Average tip per day, please", {"tips": tips})
    assert result.success, result.error
    assert [a.stage for a in result.attempts] == ["execute", "validate", "execute"]
    assert "KeyError" in result.attempts[0].error
    assert result.attempts[1].risk_level in ("high", "critical")
    assert result.attempts[2].error is None and result.code == GOOD
    assert result.insights == ["The average tip is 2.99. (unverified: 2.99 not in the results)"]

    first, second, third, _ = llm.bodies()
    assert "<previous_attempts>" not in first["messages"][0]["content"]
    [failed] = previous_attempts(second)
    assert failed["code"] == WRONG_COLUMN and "KeyError" in failed["error"]
    assert [a["code"] for a in previous_attempts(third)] == [WRONG_COLUMN, REFUSED]
    assert result.usage["input_tokens"] == 4000  # three generations and the insights


async def test_repair_budget_exhausted(agent, llm, tips):
    llm.script(*[analysis(WRONG_COLUMN)] * 3)  # the first try and max_repairs=2 repairs
    result = await agent.analyze("Average tips", {"tips": tips})
    assert not result.success
    assert len(result.attempts) == 3 and all("KeyError" in a.error for a in result.attempts)
    assert "KeyError" in result.error
    assert len(llm.requests) == 3  # no fourth try and no insights for a failed analysis


async def test_generation_error_is_a_failed_result_not_a_traceback(agent, llm, tips):
    llm.script(error(401, "invalid x-api-key"))
    result = await agent.analyze("Average tips", {"tips": tips})
    assert not result.success and "rejected the API key" in result.error


def test_magic_runs_claude_code_and_binds_the_result(server, tips, capsys):
    from conftest import analyst_shell

    server.requests.clear()
    server.script(analysis(GOOD, "Plots average tips."), insights("The average tip is 3.00."))
    shell = analyst_shell(backend="local")
    shell.user_ns["tips"] = tips
    try:
        shell.run_cell_magic("analyze", "tips --yes", "Which day has the best tips, on average?")
        result = shell.user_ns["_analysis"]
        assert result.success, result.error
        assert [v["title"] for v in result.visualizations] == ["Average tip by day"]
        assert result.generator["model"] == DEFAULT_MODEL and len(result.attempts) == 1
        assert result.usage["cost_usd"] is not None

        shown = capsys.readouterr().out
        server.requests.clear()
        shell.run_cell_magic("analyze", "tips --show-prompt", "Which day has the best tips?")
        preview = capsys.readouterr().out
        assert server.requests == [] and "<data_context>" in preview and "=== system ===" in preview
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    # The status line names the generator and the cost; the insight is printed.
    assert f"Claude ({DEFAULT_MODEL})" in shown and "cost" in shown
    assert "The average tip is 3.00." in shown


def test_agent_model_override(server):
    agent = PythonAnalysisAgent(model="claude-opus-5-5", backend="local")
    try:
        assert isinstance(agent.generator, ClaudeGenerator)
        assert agent.generator.describe() == "Claude (claude-opus-5-5)"
    finally:
        agent.cleanup()


def test_a_key_set_after_the_first_cell_is_used_and_the_reply_streams_in_the_magic(
        server, tips, capsys, monkeypatch):
    from conftest import analyst_shell

    server.requests.clear()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    shell = analyst_shell(backend="local")
    shell.user_ns["tips"] = tips
    try:
        # No key: --model anthropic:<id> is an error naming the variable, not the templates.
        shell.run_cell_magic("analyze", "tips --yes --model anthropic:claude-opus-5-5",
                             "Which day has the best tips?")
        said = capsys.readouterr()
        assert "needs an API key" in said.err and "Set ANTHROPIC_API_KEY" in said.err
        # No key and no --model: the offline templates, as before.
        shell.run_cell_magic("analyze", "tips --yes", "Show the distribution of tip")
        assert shell.user_ns["_analysis"].generator["name"] == "offline"
        assert server.requests == []

        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")  # no %reload_ext
        slow = analysis(GOOD, "Plots average tips.")
        slow.chunk_delay = 0.05  # slow enough for the status line to show the stream
        server.script(slow, insights("The average tip is 3.00."))
        capsys.readouterr()
        shell.run_cell_magic("analyze", "tips --yes --model anthropic:claude-opus-5-5",
                             "Which day has the best tips?")
        result = shell.user_ns["_analysis"]
        shown = capsys.readouterr().out
        server.script(analysis(GOOD), insights("The average tip is 3.00."))
        shell.run_cell_magic("analyze", "tips --yes --no-cache", "Which day has the best tips?")
        default = shell.user_ns["_analysis"]
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    assert result.success, result.error
    assert result.generator == {"name": "Claude", "model": "claude-opus-5-5"}
    assert default.generator == {"name": "Claude", "model": DEFAULT_MODEL}  # the key, now
    assert all(body["stream"] for body in server.bodies())
    assert server.bodies()[0]["model"] == "claude-opus-5-5"
    streaming = [line for line in shown.splitlines()
                 if line.startswith("Generating code with Claude (claude-opus-5-5) (~")]
    assert streaming and all(" tokens, " in line for line in streaming), shown
