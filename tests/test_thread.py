"""A conversation with the data: follow-ups carry the earlier steps, through the real SDK.

The agent runs on the local sandbox backend; Claude is the loopback Messages API server
of llm_server.py, so every assertion reads the request bodies the SDK really sent.
"""

from __future__ import annotations

import json

import pytest
from conftest import StaticGenerator, fresh_shell
from IPython.utils.capture import capture_output
from llm_server import agent, analysis, insights, llm, server  # noqa: F401 (fixtures)

from jupyter_analyst import AnalysisResult, PythonAnalysisAgent
from jupyter_analyst.session import MAX_THREAD_CHARS, Thread

pytestmark = [pytest.mark.llm, pytest.mark.kernel]

MEAN_TIP = ("from jupyter_analyst.runtime import save_metrics\n"
            "save_metrics({'mean_tip': round(float(tips['tip'].mean()), 4)})\n"
            "print('mean tip computed')\n")
BY_DAY = "print(tips.groupby('day', observed=True)['tip'].mean().round(2))\n"


def conversation(body: dict) -> list[dict] | None:
    """The <conversation> block of an analysis request, or None when there is none."""
    content = body["messages"][0]["content"]
    if "<conversation>" not in content:
        return None
    block = content.split("<conversation>\n", 1)[1].split("\n</conversation>")[0]
    return json.loads(block.split("\n", 1)[1])


async def test_a_follow_up_carries_the_earlier_question_code_and_metrics(agent, llm, tips):
    thread = agent.thread()
    llm.script(analysis(MEAN_TIP), insights("The mean tip is 3.00."),
               analysis(BY_DAY), insights("Sunday tips most."))
    first = await thread.ask("What is the mean tip?", {"tips": tips})
    second = await thread.ask("Now the same by day", {"tips": tips})
    assert first.success and second.success, (first.error, second.error)
    bodies = llm.bodies()
    assert conversation(bodies[0]) is None  # the first question has no past
    [step] = conversation(bodies[2])
    assert step["question"] == "What is the mean tip?" and step["code"] == MEAN_TIP
    assert step["results"]["metrics"] == {"mean_tip": round(float(tips.tip.mean()), 4)}
    assert "mean tip computed" in step["results"]["printed_output_end"]
    assert "fresh sandbox namespace" in bodies[2]["messages"][0]["content"]


async def test_a_new_thread_sends_none_of_the_old_one(agent, llm, tips):
    old = agent.thread()
    llm.script(analysis(MEAN_TIP), insights("The mean tip is 3.00."),
               analysis(BY_DAY), insights("Sunday tips most."))
    await old.ask("What is the mean tip?", {"tips": tips})
    await agent.thread().ask("Tips by day", {"tips": tips})
    assert conversation(llm.bodies()[2]) is None


async def test_in_schema_mode_no_result_value_is_sent(agent, llm, tips):
    thread = agent.thread()
    llm.script(analysis(MEAN_TIP), analysis(BY_DAY))  # no insights are asked for in schema
    await thread.ask("What is the mean tip?", {"tips": tips}, privacy="schema")
    await thread.ask("And by day?", {"tips": tips}, privacy="schema")
    raw = llm.raw_bodies()[1]
    [step] = conversation(llm.bodies()[1])
    assert step["results"]["metric_names"] == ["mean_tip"]
    value = str(round(float(tips.tip.mean()), 4))
    at = raw.find(value)
    assert at < 0, raw[max(0, at - 300):at + 50]
    assert "printed_output_end" not in raw


def test_thirty_follow_ups_stay_within_the_bound_newest_kept(tips):
    agent = PythonAnalysisAgent(backend="local", generator=StaticGenerator("print(1)"))
    try:
        thread = Thread(agent)
        for number in range(30):
            session = agent.session(f"question {number}", tips, thread=thread)
            result = AnalysisResult(success=True, query=session.question,
                                    code=f"# step {number}\n" + "x = 1\n" * 600,
                                    metrics={f"m{i}": i * 1.5 for i in range(50)},
                                    raw_output="y" * 5000)
            thread.record(session, result)
        follow_up = agent.session("question 30", tips, thread=thread)
    finally:
        agent.cleanup()
    history = follow_up.request.history
    assert 0 < len(history) < 30 and len(thread) == 30
    assert history[-1].question == "question 29"  # the oldest steps went first
    size = sum(len(s.question) + len(s.code) + len(repr(s.digest)) for s in history)
    assert size <= MAX_THREAD_CHARS
    assert all(len(s.digest["metrics"]) <= 30 for s in history)


def test_consecutive_cells_form_a_thread_and_new_starts_again(llm, tips):
    shell = fresh_shell()
    shell.run_line_magic("load_ext", "jupyter_analyst")
    try:
        shell.run_line_magic("config", "Analyze.backend = 'local'")
        shell.user_ns["tips"] = tips
        llm.script(analysis(MEAN_TIP), insights("The mean tip is 3.00."),
                   analysis(BY_DAY), insights("Sunday tips most."),
                   analysis(BY_DAY), insights("Sunday tips most."))
        with capture_output():
            shell.run_cell_magic("analyze", "tips --yes --no-cache", "What is the mean tip?")
            shell.run_cell_magic("analyze", "tips --yes --no-cache", "Now by day")
            shell.run_cell_magic("analyze", "tips --yes --no-cache --new", "Tips by day")
        bodies = llm.bodies()
        assert [s["question"] for s in conversation(bodies[2])] == ["What is the mean tip?"]
        assert conversation(bodies[4]) is None
        with capture_output() as shown:  # --show-prompt shows the thread as it would be sent
            shell.run_cell_magic("analyze", "tips --show-prompt", "And the median?")
        assert "<conversation>" in shown.stdout and "Tips by day" in shown.stdout
        assert "What is the mean tip?" not in shown.stdout
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
