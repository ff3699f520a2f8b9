"""Local and OpenAI models through the whole pipeline, on the local sandbox backend.

The real openai SDK streams from tests/llm_server.py (OLLAMA_HOST or OPENAI_BASE_URL
pointed at it); the returned code runs in a real kernel.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import analyst_shell
from llm_server import (  # noqa: F401 (fixtures)
    chat_analysis,
    chat_insights,
    chat_server,
    chat_text,
    ollama_server,
)

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.errors import GenerationError

pytestmark = [pytest.mark.llm, pytest.mark.kernel]

MODEL = "qwen2.5-coder:7b"
GOOD = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics
by_size = tips.groupby("size")["total_bill"].median()
save_metrics({"largest_party": int(tips["size"].max()), "median_bill": tips["total_bill"].median()})
by_size.plot.bar()
plt.title("Median bill by party size")
plt.ylabel("total_bill")
"""
WRONG = 'print(tips["party_size"].max())\n'


async def test_ollama_model_runs_the_whole_pipeline_with_streaming_progress(ollama_server, tips):
    generated = chat_analysis(WRONG, prompt_tokens=2100, completion_tokens=90)
    fixed = chat_analysis(GOOD, "Median bill per party size, plotted.", prompt_tokens=2600,
                          completion_tokens=260)
    fixed.chunk_delay = 0.03  # slow enough to watch the status line
    ollama_server.script(generated, fixed, chat_insights(
        f"The largest party has {int(tips['size'].max())} people."))
    async with PythonAnalysisAgent(model=f"ollama:{MODEL}", backend="local",
                                   use_cache=False) as agent:
        session = agent.session("How does the bill grow with the party size?", {"tips": tips})
        answering = asyncio.ensure_future(session.answer())
        statuses = set()
        while not answering.done():
            statuses.add(session.describe_activity())
            await asyncio.sleep(0.01)
        result = answering.result()

    assert result.success, result.error
    assert result.generator == {"name": "Ollama", "model": MODEL}
    assert [a.error is None for a in result.attempts] == [False, True]
    assert "party_size" in result.attempts[0].error
    assert result.metrics["median_bill"] == pytest.approx(tips.total_bill.median())
    assert [v["title"] for v in result.visualizations] == ["Median bill by party size"]
    assert result.insights == [f"The largest party has {int(tips['size'].max())} people."]
    assert result.usage == {"input_tokens": 2100 + 2600 + 900, "output_tokens": 90 + 260 + 150,
                            "cost_usd": 0.0}
    assert all(body["stream"] for body in ollama_server.bodies())
    assert "<previous_attempts>" in ollama_server.bodies()[1]["messages"][1]["content"]
    streaming = [s for s in statuses if "tokens" in s]
    assert any(s.startswith(f"asking for a fix with Ollama ({MODEL}) (~") for s in streaming), \
        statuses


async def test_an_openai_key_set_after_the_first_question_is_used(chat_server, monkeypatch, tips):
    monkeypatch.delenv("OPENAI_API_KEY")
    # The model of one question (the agent's default stays offline).
    async with PythonAnalysisAgent(backend="local") as agent:
        with pytest.raises(GenerationError, match="OPENAI_API_KEY"):  # not the offline templates
            await agent.analyze("What is the largest bill?", tips, model="openai:gpt-4.1-mini")
        assert chat_server.requests == []
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
        chat_server.script(chat_analysis("print(df['total_bill'].max())\n"),
                           chat_insights("The largest bill is 50.81."))
        result = await agent.analyze("What is the largest bill?", tips, model="openai:gpt-4.1-mini")
    assert result.success, result.error
    assert result.generator == {"name": "OpenAI", "model": "gpt-4.1-mini"}
    assert "50.81" in result.raw_output
    assert result.usage["cost_usd"] == pytest.approx(2 * (900 * 0.4 + 150 * 1.6) / 1e6)


def test_magic_with_an_ollama_model(ollama_server, tips, capsys):
    ollama_server.script(chat_text(f"```python\n{GOOD}```\nPlots the median bill."),
                         chat_insights("Parties of six are the largest."))
    shell = analyst_shell(backend="local", model=f"ollama:{MODEL}")  # %config Analyze.model
    shell.user_ns["tips"] = tips
    try:
        shell.run_cell_magic("analyze", "tips --yes --no-cache", "Median bill by party size")
        result = shell.user_ns["_analysis"]
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    assert result.success, result.error
    assert result.generator["name"] == "Ollama" and result.explanation == "Plots the median bill."
    shown = capsys.readouterr().out
    assert f"Ollama ({MODEL})" in shown and "Parties of six are the largest." in shown


def test_magic_with_an_openai_model_streams_into_the_status_line(chat_server, tips, capsys):
    slow = chat_analysis(GOOD, "Median bill per party size, plotted.")
    slow.chunk_delay = 0.03
    chat_server.script(slow, chat_insights("Parties of six are the largest."))
    shell = analyst_shell(backend="local")
    shell.user_ns["tips"] = tips
    try:
        shell.run_cell_magic("analyze", "tips --yes --model openai:gpt-4.1-mini",
                             "Median bill by party size")
        result = shell.user_ns["_analysis"]
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    assert result.success, result.error
    assert result.generator == {"name": "OpenAI", "model": "gpt-4.1-mini"}
    assert result.usage["cost_usd"] == pytest.approx(2 * (900 * 0.4 + 150 * 1.6) / 1e6)
    shown = capsys.readouterr().out
    streaming = [line for line in shown.splitlines()
                 if line.startswith("Generating code with OpenAI (gpt-4.1-mini) (~")]
    assert len(streaming) > 1 and all(" tokens, " in line for line in streaming), shown
    assert "cost ≈ $0.0012" in shown and "Parties of six are the largest." in shown
