"""Offline follow-ups: "the same for tip", "as a boxplot", "by day", "only for 2008".

Each follow-up is read as a change of the conversation's previous step, on the seaborn
data in tests/corpora; the steps carry the code the templates wrote, as a thread records
it. One conversation runs end to end in the local sandbox, and its numbers are checked
against pandas.
"""

from __future__ import annotations

import pytest
from conftest import read_seaborn

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.context import describe_frames
from jupyter_analyst.errors import NotUnderstoodError
from jupyter_analyst.generation.base import Exchange
from jupyter_analyst.generation.offline import OfflineGenerator
from jupyter_analyst.generation.offline.followup import plan_in_thread


def conversation(name: str, *questions: str):
    """The plans of ``questions`` asked in turn about a seaborn frame, as a thread would."""
    context = describe_frames({name: read_seaborn(name)})
    history, plans = [], []
    for question in questions:
        chosen = plan_in_thread(question, context, None, history)
        plans.append(chosen)
        history.append(Exchange(question, chosen.code(), {"succeeded": True}))
    return plans


def test_the_same_for_by_and_as_change_the_previous_step():
    plans = conversation("tips", "Show the distribution of total_bill", "the same for tip",
                         "by day", "as a boxplot", "the same for time", "what about size",
                         "as a violin plot")
    assert [(p.template, p.bindings) for p in plans] == [
        ("distribution", {"column": "total_bill"}),
        ("distribution", {"column": "tip"}),
        ("group_comparison", {"value_column": "tip", "group_column": "day",
                              "statistic": "mean"}),
        ("box_chart", {"kind": "box", "x": "day", "y": "tip"}),
        ("box_chart", {"kind": "box", "x": "time", "y": "tip"}),
        ("box_chart", {"kind": "box", "x": "time", "y": "size"}),
        ("violin_chart", {"kind": "violin", "x": "time", "y": "size"}),
    ]
    assert plans[3].explanation.startswith(
        "Read as a follow-up of the previous step: 'Show the distribution of tip by day as a "
        "box plot'.")


def test_rows_are_added_replaced_and_kept():
    plans = conversation("tips", "mean tip by day", "only for Dinner", "now for Lunch",
                         "for smokers")
    assert [p.reading for p in plans] == ["", "time is Dinner", "time is Lunch",
                                          "time is Lunch; smoker is Yes"]
    assert all(p.bindings["group_column"] == "day" for p in plans)


def test_rows_after_a_chart_follow_up():
    # "... as a box plot for Dinner": the word after "plot" leads a selection, names no column.
    plans = conversation("exercise", "average pulse by diet", "as a boxplot", "only for running")
    assert [(p.template, p.reading) for p in plans] == [
        ("group_statistic", ""), ("box_chart", ""), ("box_chart", "kind is running")]


def test_only_for_a_year_replaces_the_year_asked_before():
    plans = conversation("planets", "mean distance by method in 2007", "only for 2008",
                         "the same for orbital_period", "as a bar chart")
    assert [p.reading for p in plans] == ["in 2007", "in 2008", "in 2008", "in 2008"]
    assert plans[2].bindings["value_column"] == "orbital_period"
    assert plans[3].template == "bar_chart" and plans[3].bindings["x"] == "method"


def test_a_question_of_its_own_is_answered_as_asked_in_a_thread():
    plans = conversation("tips", "mean tip by day", "Show the distribution of total_bill")
    assert plans[1].bindings == {"column": "total_bill"}
    assert "follow-up" not in plans[1].explanation
    edited = Exchange("mean tip by day", plans[0].code().replace("tip", "total_bill"))
    context = describe_frames({"tips": read_seaborn("tips")})
    assert plan_in_thread("Show the distribution of total_bill", context, None,
                          [edited]).bindings == {"column": "total_bill"}


@pytest.mark.parametrize("follow_up, says", [
    ("the median instead", "does not know what 'median' asks to change"),
    ("the same for tip", "already about 'tip'"),
    ("and now", "names no column, chart, groups or rows to change"),
])
def test_a_follow_up_the_templates_cannot_read_says_it_needs_an_llm(follow_up, says):
    with pytest.raises(NotUnderstoodError) as caught:
        conversation("tips", "mean tip by day", follow_up)
    assert says in caught.value.problem + caught.value.fix
    assert "ANTHROPIC_API_KEY" in caught.value.fix and "--model" in caught.value.fix


def test_a_step_the_templates_did_not_write_cannot_be_changed_offline():
    context = describe_frames({"tips": read_seaborn("tips")})
    written_by_a_model = Exchange("What is the mean tip by day?",
                                  "print(tips.groupby('day')['tip'].mean())\n")
    about_other_data = Exchange("Show the distribution of revenue", "print(1)\n")
    with pytest.raises(NotUnderstoodError) as caught:
        plan_in_thread("the same for total_bill", context, None,
                       [about_other_data, written_by_a_model])
    assert "previous step's code is not what the offline templates wrote" in \
        caught.value.problem
    assert "ANTHROPIC_API_KEY" in caught.value.fix


@pytest.mark.kernel
async def test_an_offline_conversation_runs_and_its_numbers_are_the_data_s():
    tips = read_seaborn("tips")
    agent = PythonAnalysisAgent(backend="local", generator=OfflineGenerator())
    try:
        thread = agent.thread()
        first = await thread.ask("mean tip by day", {"tips": tips})
        second = await thread.ask("only for Dinner", {"tips": tips})
        third = await thread.ask("as a boxplot", {"tips": tips})
    finally:
        await agent.aclose()
    assert first.success and second.success and third.success, (second.error, third.error)
    dinner = tips[tips.time == "Dinner"].groupby("day")["tip"].mean().round(4)
    assert {k: v for k, v in second.metrics.items() if k.startswith("mean ")} == {
        f"mean {day}": value for day, value in dinner.items()}
    assert third.metrics["chart"] == "box" and third.metrics["rows"] == len(
        tips[tips.time == "Dinner"])
    assert "Read as a follow-up" in third.explanation and third.visualizations
