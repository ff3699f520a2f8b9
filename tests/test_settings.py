"""One source of settings: the seed's variables take effect when they are set, even late.

Each variable is set *after* the agent exists (and, where it matters, after a first
analysis), and the test shows its effect on a real kernel, a real Docker container or
a real HTTP request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from conftest import StaticGenerator, docker_engine, fresh_shell
from llm_server import MessagesServer, analysis, insights
from traitlets import TraitError

from jupyter_analyst import PythonAnalysisAgent, RequestOptions
from jupyter_analyst.errors import GenerationError, InputError
from jupyter_analyst.safety import SafetyReport

SLEEP = "import time\ntime.sleep(30)\n"


class AllowAll:
    """Lets code the validator would refuse reach the kernel (to read its limits)."""

    def validate(self, code):
        return SafetyReport()


@pytest.mark.kernel
async def test_sandbox_timeout_set_after_the_agent_exists(tips, monkeypatch):
    monkeypatch.delenv("SANDBOX_TIMEOUT", raising=False)
    async with PythonAnalysisAgent(backend="local", generator=StaticGenerator(SLEEP)) as agent:
        monkeypatch.setenv("SANDBOX_TIMEOUT", "1.5")
        started = time.monotonic()
        result = await agent.analyze("sleep", tips)
    assert not result.success and "longer than 1.5 s" in result.error
    assert time.monotonic() - started < 20


@pytest.mark.kernel
async def test_sandbox_memory_limit_set_before_the_first_analysis(tips, monkeypatch):
    code = ("import resource\n"
            "print('data limit', resource.getrlimit(resource.RLIMIT_DATA)[0])\n")
    monkeypatch.delenv("SANDBOX_MEMORY_LIMIT", raising=False)
    async with PythonAnalysisAgent(backend="local", generator=StaticGenerator(code),
                                   validator=AllowAll()) as agent:
        monkeypatch.setenv("SANDBOX_MEMORY_LIMIT", "1500m")
        result = await agent.analyze("limits", tips)
    assert result.success, result.error
    assert f"data limit {1500 * 1024**2}" in result.raw_output


@pytest.mark.docker
async def test_cpu_limit_and_image_name_are_read_when_the_sandbox_starts(tips, monkeypatch):
    docker_engine()
    monkeypatch.delenv("SANDBOX_CPU_LIMIT", raising=False)
    missing = "jupyter-analyst-sandbox:no-such-tag"
    async with PythonAnalysisAgent(backend="docker",
                                   generator=StaticGenerator("print(len(df))")) as agent:
        monkeypatch.setenv("SANDBOX_CPU_LIMIT", "0.5")
        result = await agent.analyze("rows", tips)
        assert result.success, result.error
        host = agent.sandbox.manager.provisioner.container.attrs["HostConfig"]
        assert host["NanoCpus"] == 5 * 10**8
    monkeypatch.setenv("DOCKER_IMAGE_NAME", missing)
    async with PythonAnalysisAgent(backend="docker",
                                   generator=StaticGenerator("print(1)")) as agent:
        result = await agent.analyze("rows", tips)
    assert not result.success
    assert missing in result.error and "build-image" in result.error


@pytest.mark.llm
@pytest.mark.kernel
async def test_api_key_set_after_the_first_analysis_is_used_by_the_next(tips, monkeypatch,
                                                                      tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("JUPYTER_ANALYST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = MessagesServer().start()
    try:
        async with PythonAnalysisAgent(backend="local") as agent:
            first = await agent.analyze("Show the distribution of total_bill", tips)
            assert first.success and first.generator["name"] == "offline"
            monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-late-key")
            server.script(analysis("print(round(df['tip'].mean(), 2))"),
                          insights("The mean tip is 3.0."))
            second = await agent.analyze("What is the mean tip?", tips)
    finally:
        server.stop()
    assert second.success and second.generator["name"] == "Claude", second.error
    headers = server.requests[0]["headers"]  # this SDK sends the key as a bearer token
    assert "sk-ant-late-key" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


def test_a_claude_model_without_a_key_is_an_error_that_names_the_variable(monkeypatch, tips):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    agent = PythonAnalysisAgent(model="claude-opus-5-5", backend="local")
    try:
        with pytest.raises(GenerationError) as raised:
            agent.session("mean tip", tips)
    finally:
        agent.cleanup()
    assert "ANTHROPIC_API_KEY" in str(raised.value) and "offline" in raised.value.fix


@pytest.mark.parametrize("options, message", [
    ({"timeout": 0}, "not a positive number"),
    ({"timeout": -5}, "not a positive number"),
    ({"max_repairs": -1}, "negative"),
    ({"privacy": "everything"}, "Unknown privacy mode"),
])
def test_request_options_validate(options, message):
    with pytest.raises(InputError, match=message):
        RequestOptions(**options)


def test_config_traits_validate():
    shell = fresh_shell()
    shell.run_line_magic("load_ext", "jupyter_analyst")
    try:
        from jupyter_analyst import magic

        with pytest.raises(TraitError, match="positive"):
            magic._magics.timeout = -1.0
        with pytest.raises(TraitError, match="negative"):
            magic._magics.max_repairs = -2
        magic._magics.timeout = 42.0
        assert magic._magics.request_options(_args())["timeout"] == 42.0
        magic._magics.log_level = "INFO"
        assert logging.getLogger("jupyter_analyst").level == logging.INFO
    finally:
        logging.getLogger("jupyter_analyst").setLevel(logging.WARNING)
        shell.run_line_magic("unload_ext", "jupyter_analyst")


def _args(**given):
    from types import SimpleNamespace

    defaults = dict(privacy=None, unmask=False, no_cache=False, model=None, analysis_type=None,
                    timeout=None, context=None)
    return SimpleNamespace(**{**defaults, **given})


@pytest.mark.kernel
async def test_async_close_awaits_the_sandbox_without_blocking_the_callers_loop(tips):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    agent = PythonAnalysisAgent(backend="local", generator=StaticGenerator("print(1)"))
    assert (await agent.analyze("q", tips)).success
    task = asyncio.create_task(ticker())
    before = ticks
    await agent.aclose()
    task.cancel()
    assert agent.sandbox is None
    assert ticks > before  # the caller's loop ran while the kernel shut down


@pytest.mark.kernel
async def test_the_sandbox_starts_while_the_code_is_generated(tips):
    class Slow(StaticGenerator):
        """Answers once the sandbox is up (or after two minutes): generation outlasts it."""

        saw_started = False

        async def generate(self, request):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (agent.sandbox and agent.sandbox.started):
                await asyncio.sleep(0.1)
            self.saw_started = agent.sandbox is not None and agent.sandbox.started
            return await super().generate(request)

    slow = Slow("print(1)")
    async with PythonAnalysisAgent(backend="local", generator=slow) as agent:
        session = agent.session("q", tips)
        await session.prepare()
        assert slow.saw_started  # up while the code was still being written
        warm = agent.sandbox
        assert (await session.run()).success
        assert agent.sandbox is warm and warm.restarts == 0  # no kernel start left to wait for
