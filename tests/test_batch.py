"""batch_analyze on a pool of warm sandboxes: local backend and the real Docker engine.

Each question's code is the question itself (a seam generator), so a batch can mix
answers that take time, fail in the kernel, or are refused before they run.
"""

import pytest
from conftest import StaticGenerator, docker_engine

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.generation import GeneratedCode
from jupyter_analyst.sandbox import SandboxLimits
from jupyter_analyst.sandbox.limits import host_memory


class QuestionIsCode(StaticGenerator):
    async def generate(self, request):
        return GeneratedCode(code=request.question, explanation="the question, run",
                             generator=self.name)


def timed(i: int) -> str:
    """Code that takes about a second and says when it ran, in which kernel."""
    return ("import time\nfrom jupyter_analyst.runtime import save_metrics\n"
            "started = time.time()\ntime.sleep(1)\n"
            f"save_metrics({{'i': {i}, 'rows': len(df), 'start': started, 'end': time.time()}})")


def check_batch(agent: PythonAnalysisAgent, tips, sandboxes: int) -> None:
    queries = [timed(0), timed(1), "raise ValueError('boom')", timed(3), "   ", timed(5)]
    results = agent._loop.run_sync(agent.batch_analyze(queries, tips, max_concurrent=sandboxes))
    assert [r.query for r in results[:4]] == [q.strip() for q in queries[:4]]  # input order
    ok = [results[i] for i in (0, 1, 3, 5)]
    assert all(r.success for r in ok), [r.error for r in ok]
    assert [r.metrics["i"] for r in ok] == [0, 1, 3, 5] and ok[0].metrics["rows"] == len(tips)
    assert not results[2].success and "boom" in results[2].error  # failed, others ran
    assert not results[4].success and "empty" in results[4].error
    spans = sorted((r.metrics["start"], r.metrics["end"]) for r in ok)
    overlapping = any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert overlapping is (sandboxes > 1)
    pool = [agent.sandbox] + [e.result() for e in agent._extras]
    assert len(pool) == sandboxes
    assert all(s.frames_written == 1 for s in pool)  # each loaded the frame once
    # A single analysis afterwards runs on the agent's one warm sandbox.
    kernel = agent.sandbox.manager.kernel_id
    assert agent.analyze_sync(timed(9), tips).success
    assert agent.sandbox.manager.kernel_id == kernel and agent.sandbox.frames_written == 1


@pytest.mark.kernel
def test_batch_on_a_pool_of_local_sandboxes(tips):
    with PythonAnalysisAgent(backend="local", generator=QuestionIsCode()) as agent:
        check_batch(agent, tips, sandboxes=2)


@pytest.mark.kernel
def test_one_sandbox_runs_the_batch_in_turn(tips):
    with PythonAnalysisAgent(backend="local", generator=QuestionIsCode()) as agent:
        check_batch(agent, tips, sandboxes=1)


@pytest.mark.docker
def test_batch_on_a_pool_of_docker_sandboxes(tips):
    docker_engine()
    with PythonAnalysisAgent(backend="docker", generator=QuestionIsCode()) as agent:
        check_batch(agent, tips, sandboxes=2)


@pytest.mark.kernel
def test_the_pool_is_bounded_by_memory_and_says_so(tips):
    limits = SandboxLimits(memory=host_memory() // 2 + 1)  # one fits, two would not
    with PythonAnalysisAgent(backend="local", generator=QuestionIsCode(),
                             limits=limits) as agent:
        results = agent._loop.run_sync(
            agent.batch_analyze([timed(0), timed(1)], tips, max_concurrent=4))
        assert all(r.success for r in results) and agent._extras == []
        note = "The batch ran on 1 sandbox, not 4"
        assert all(any(note in n and "SANDBOX_MEMORY_LIMIT" in n for n in r.notices)
                   for r in results)
