"""The Python API end to end on the local backend, with a fixed-code generator seam."""

import asyncio

import pandas as pd
import pytest
from conftest import StaticGenerator

from jupyter_analyst import AnalysisResult, PythonAnalysisAgent, quick_analyze
from jupyter_analyst.errors import InputError

pytestmark = pytest.mark.kernel

PLOT_AND_METRICS = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics, save_table
print("rows:", len(df))
save_metrics({"mean_bill": df["total_bill"].mean(), "rows": len(df)})
save_table(df.groupby("day")["tip"].mean(), "tip_by_day")
df["total_bill"].plot.hist(bins=20)
plt.title("Total bill")
"""

# A first try that fails in the kernel and the fix a repairing generator sends back.
SAVE = "from jupyter_analyst.runtime import save_metrics\n"
BROKEN_MEAN = SAVE + "save_metrics({'m': df['nope'].mean()})"
FIXED_MEAN = SAVE + "save_metrics({'m': df['tip'].mean()})"


@pytest.fixture(scope="module")
def agent():
    agent = PythonAnalysisAgent(backend="local", generator=StaticGenerator(PLOT_AND_METRICS))
    yield agent
    agent.cleanup()


async def test_analyze_returns_plot_metrics_tables_and_files(agent, tips):
    result = await agent.analyze("Describe the bills", tips)
    assert isinstance(result, AnalysisResult) and result.success, result.error
    assert result.metrics["mean_bill"] == pytest.approx(tips.total_bill.mean())
    assert result.metrics["rows"] == len(tips)
    assert [v["title"] for v in result.visualizations] == ["Total bill"]
    assert result.data_outputs[0]["name"] == "tip_by_day.csv"
    assert "rows: 244" in result.raw_output
    assert result.code == PLOT_AND_METRICS and result.safety.allowed
    assert result.backend == "local (bubblewrap)"
    assert result.generator["name"] == "static" and len(result.attempts) == 1
    assert result.usage["input_tokens"] == 11  # generation + insights, totalled
    assert result.insights == ["2 metrics computed"]


async def test_second_analysis_of_same_frame_moves_no_data(agent, tips):
    await agent.analyze("first", tips)
    written = agent.sandbox.frames_written
    restarts = agent.sandbox.restarts
    kernel_id = agent.sandbox.manager.kernel_id
    result = await agent.analyze("second", tips)
    assert result.success
    assert agent.sandbox.frames_written == written  # no new Parquet file
    assert agent.sandbox.manager.kernel_id == kernel_id and agent.sandbox.restarts == restarts


def test_sync_wrapper_and_repeated_asyncio_run(agent, tips):
    assert agent.analyze_sync("sync", tips).success
    # Each asyncio.run makes a new loop; the agent's own loop keeps the kernel usable.
    assert asyncio.run(agent.analyze("run 1", tips)).success
    assert asyncio.run(agent.analyze("run 2", tips)).success


async def test_batch_analyze(agent, tips):
    results = await agent.batch_analyze(["a", "b", "c"], tips, max_concurrent=2)
    assert [r.query for r in results] == ["a", "b", "c"] and all(r.success for r in results)


async def test_dict_of_frames_is_bound_under_its_keys(tips):
    code = SAVE + "save_metrics({'n': len(left) + len(right)})"
    async with PythonAnalysisAgent(backend="local", generator=StaticGenerator(code)) as agent:
        result = await agent.analyze("count", {"left": tips, "right": tips.head(4)})
    assert result.metrics == {"n": len(tips) + 4}


@pytest.mark.parametrize("data, message", [
    (pd.Series([1, 2]), "Series"),
    ([1, 2, 3], "not a pandas DataFrame"),
    (pd.DataFrame(), "empty"),
    ({"bad name": pd.DataFrame({"a": [1]})}, "variable name"),
    (pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b"]), "more than one column named 'a'"),
])
async def test_bad_data_is_a_clear_input_error(agent, data, message):
    with pytest.raises(InputError, match=message):
        await agent.analyze("anything", data)


async def test_empty_question_is_an_input_error(agent, tips):
    with pytest.raises(InputError, match="question is empty"):
        await agent.analyze("   ", tips)


async def test_failing_code_reports_the_line(tips):
    code = "x = 1\ny = df['no_such_column']\n"
    async with PythonAnalysisAgent(backend="local", generator=StaticGenerator(code)) as agent:
        result = await agent.analyze("broken", tips)
    assert not result.success
    assert "KeyError" in result.error and "line 2" in result.error
    assert "no_such_column" in result.error
    assert result.attempts[0].error == result.error


async def test_refused_code_never_runs(tips):
    code = "import os\nos.system('touch /tmp/should-not-exist')"
    async with PythonAnalysisAgent(backend="local", generator=StaticGenerator(code)) as agent:
        result = await agent.analyze("evil", tips)
    assert [a.stage for a in result.attempts] == ["validate"]  # it never reached the kernel
    assert not result.success and not result.safety.allowed
    assert "safety check refused" in result.error
    assert result.attempts[0].stage == "validate"


async def test_repair_loop_retries_until_the_code_works(tips):
    generator = StaticGenerator(BROKEN_MEAN, FIXED_MEAN, can_repair=True)
    async with PythonAnalysisAgent(backend="local", generator=generator) as agent:
        result = await agent.analyze("mean tip", tips)
    assert result.success and result.code == FIXED_MEAN
    assert [a.error is None for a in result.attempts] == [False, True]
    assert "KeyError" in generator.requests[1].failures[0].error


async def test_repair_budget_is_bounded(tips):
    generator = StaticGenerator("df['nope']", can_repair=True)
    async with PythonAnalysisAgent(backend="local", generator=generator, max_repairs=2) as agent:
        result = await agent.analyze("q", tips)
    assert not result.success and len(result.attempts) == 3 and len(generator.requests) == 3


async def test_timeout_is_reported_and_agent_recovers(tips):
    generator = StaticGenerator("while True: pass")
    async with PythonAnalysisAgent(backend="local", generator=generator) as agent:
        result = await agent.analyze("spin", tips, timeout=2)
        assert not result.success and "longer than 2 s" in result.error
        generator.codes = ["print('ok')"]
        assert (await agent.analyze("after", tips)).success


async def test_kernel_death_is_reported_and_agent_recovers(tips):
    generator = StaticGenerator("import signal\nsignal.raise_signal(signal.SIGKILL)")
    async with PythonAnalysisAgent(backend="local", generator=generator,
                                   validator=_AllowAll()) as agent:
        result = await agent.analyze("die", tips)
        assert not result.success and "restarted" in result.error
        generator.codes = ["print(len(df))"]
        after = await agent.analyze("after", tips)
        assert after.success and after.raw_output.strip() == str(len(tips))


async def test_quick_analyze_offline(tips, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = await quick_analyze("Show the distribution of total_bill", tips, backend="local")
    assert result.success, result.error
    assert result.generator["name"] == "offline" and result.visualizations and result.metrics


class _AllowAll:
    """A validator that allows everything: to reach the sandbox with hostile code."""

    def validate(self, code):
        from jupyter_analyst.safety import SafetyReport

        return SafetyReport()


async def test_without_auto_repair_a_fix_is_proposed_not_run(tips):
    generator = StaticGenerator(BROKEN_MEAN, FIXED_MEAN, can_repair=True)
    async with PythonAnalysisAgent(backend="local", generator=generator) as agent:
        session = agent.session("mean tip", tips)
        await session.prepare()
        failed = await session.run()
        assert not failed.success and len(failed.attempts) == 1 and len(generator.requests) == 1
        assert session.can_fix and session.repairs_left == 2
        fix = await session.propose_fix()
        assert fix.generated.code == FIXED_MEAN and fix.safety.allowed
        assert "KeyError" in fix.request.failures[0].error and session.repairs_left == 1
        result = await session.run()
    assert result.success and result.metrics["m"] == pytest.approx(tips.tip.mean())
    # The session kept the books: both runs; two generations (10 each) and the insights (1).
    assert [a.error is None for a in result.attempts] == [False, True]
    assert result.usage["input_tokens"] == 21


async def test_generators_that_cannot_repair_say_so(agent, tips):
    session = agent.session("q", tips)
    await session.prepare()
    with pytest.raises(Exception, match="cannot repair"):
        await session.propose_fix()


async def test_auto_backend_tells_the_user_when_it_falls_back_to_local(tips, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    async with PythonAnalysisAgent(backend="auto", generator=StaticGenerator("print(1)")) as agent:
        result = await agent.analyze("q", tips)
    assert result.success and result.backend == "local (bubblewrap)"
    assert any("Docker sandbox unavailable" in line for line in result.notices)
    assert not any("Docker" in line for line in result.insights)  # a notice, not a finding
