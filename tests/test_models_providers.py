"""provider:model names, the settings they read when a question is asked, and the probe.

The probe (`jupyter-analyst models`, `%analyze models`) talks to real HTTP stand-ins.
"""

from __future__ import annotations

import socket
import time

import pytest
from conftest import analyst_shell
from llm_server import ChatServer, MessagesServer

from jupyter_analyst import PythonAnalysisAgent
from jupyter_analyst.cli import main
from jupyter_analyst.errors import GenerationError
from jupyter_analyst.generation import GeneratorChoice, make_generator
from jupyter_analyst.generation.claude import DEFAULT_MODEL, ClaudeGenerator
from jupyter_analyst.generation.offline import OfflineGenerator
from jupyter_analyst.generation.openai_compat import OpenAIGenerator
from jupyter_analyst.generation.providers import ModelSpec, resolve

VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
             "OLLAMA_HOST", "OPENAI_COMPATIBLE_BASE_URL", "OPENAI_COMPATIBLE_API_KEY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_ANALYST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- names ------------------------------------------------------------------------------
def test_names_resolve_to_a_provider_model_address_and_key(monkeypatch):
    assert resolve(None) == ModelSpec("offline")
    assert resolve("offline", anthropic_key="sk-ant-1") == ModelSpec("offline")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-2")
    assert resolve(None).provider == "anthropic" and resolve(None).model is None
    bare, named = resolve("claude-opus-5-5"), resolve("anthropic:claude-opus-5-5")
    assert bare == named and named.api_key == "sk-ant-2"
    assert named.base_url == "https://api.anthropic.com"

    assert resolve("ollama:qwen2.5-coder:7b") == ModelSpec(
        "ollama", "qwen2.5-coder:7b", "http://localhost:11434/v1", "not-needed")
    for given, url in [("10.1.2.3", "http://10.1.2.3:11434"),
                       ("gpu-box:8080", "http://gpu-box:8080"),
                       ("https://ollama.example.org/", "https://ollama.example.org")]:
        monkeypatch.setenv("OLLAMA_HOST", given)
        assert resolve("ollama:llama3.2:3b").base_url == f"{url}/v1"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa")
    assert resolve("openai:gpt-4.1") == ModelSpec("openai", "gpt-4.1",
                                                   "https://api.openai.com/v1", "sk-oa")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gateway.internal/v1/")
    assert resolve("openai:gpt-4.1").base_url == "http://gateway.internal/v1"

    spec = resolve("openai-compatible:Qwen/Qwen2.5-Coder-7B@http://vllm.lan:8000/v1")
    assert (spec.model, spec.base_url, spec.api_key) == (
        "Qwen/Qwen2.5-Coder-7B", "http://vllm.lan:8000/v1", "not-needed")
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:1234/v1")
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "lm-studio")
    spec = resolve("openai-compatible:qwen2.5-7b-instruct")
    assert (spec.base_url, spec.api_key) == ("http://127.0.0.1:1234/v1", "lm-studio")
    assert "lm-studio" not in repr(spec)  # a key is never shown


@pytest.mark.parametrize("name, words", [
    ("claude-opus-5-5", ["ANTHROPIC_API_KEY", "offline"]),
    ("anthropic:claude-sonnet-5", ["ANTHROPIC_API_KEY"]),
    ("openai:gpt-4.1", ["OPENAI_API_KEY"]),
    ("openai-compatible:mistral", ["OPENAI_COMPATIBLE_BASE_URL", "@http"]),
    ("ollama:", ["no model id", "ollama:qwen2.5-coder:7b"]),
    ("groq:llama-3", ["Unknown model provider 'groq'", "ollama"]),
])
def test_a_provider_without_what_it_needs_is_an_error_naming_it(name, words):
    with pytest.raises(GenerationError) as raised:
        make_generator(name)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_a_provider_without_its_key_never_falls_back_to_offline(tips):
    agent = PythonAnalysisAgent(model="openai:gpt-4.1-mini", backend="local")
    try:
        with pytest.raises(GenerationError, match="OPENAI_API_KEY"):
            agent.session("mean tip", tips)
        with pytest.raises(GenerationError, match="OPENAI_API_KEY"):
            agent.generator  # noqa: B018 (the property is the choice)
    finally:
        agent.cleanup()


def test_the_choice_reads_the_environment_each_time(monkeypatch):
    choice = GeneratorChoice()
    assert isinstance(choice.get(None), OfflineGenerator)
    first = choice.get("ollama:phi4:14b")
    assert isinstance(first, OpenAIGenerator) and first.base_url == "http://localhost:11434/v1"
    assert choice.get("ollama:phi4:14b") is first  # kept while nothing changed
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    moved = choice.get("ollama:phi4:14b")
    assert moved is not first and moved.base_url == "http://127.0.0.1:9999/v1"

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-late")
    claude = choice.get(None)
    assert isinstance(claude, ClaudeGenerator) and claude.model == DEFAULT_MODEL
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-rotated")
    assert choice.get(None) is not claude  # a new key is a new client


@pytest.mark.parametrize("name, meant", [
    ("olama:qwen2.5-coder:7b", "Did you mean ollama:qwen2.5-coder:7b?"),
    ("antropic:claude-opus-5-5", "Did you mean anthropic:claude-opus-5-5?"),
    ("open-ai:gpt-4.1", "Did you mean openai:gpt-4.1?"),
    ("vllm:Qwen/Qwen2.5-Coder-7B-Instruct",
     "Did you mean openai-compatible:Qwen/Qwen2.5-Coder-7B-Instruct?"),
    ("lmstudio:qwen2.5-7b-instruct", "Did you mean openai-compatible:qwen2.5-7b-instruct?"),
    ("qwen2.5-coder:7b", "For a model in Ollama write ollama:qwen2.5-coder:7b;"),  # no provider
    ("llama3.2", "For a model in Ollama write ollama:llama3.2;"),
    ("gpt-4.1-mini", "For OpenAI's model write openai:gpt-4.1-mini."),
])
def test_a_mistyped_or_missing_provider_gets_the_name_that_was_meant(name, meant):
    with pytest.raises(GenerationError) as raised:
        resolve(name)
    assert meant in raised.value.fix and "provider:id" in raised.value.fix
    assert name in raised.value.problem


def test_the_provider_is_read_in_any_case_and_spaces_around_the_id_go():
    assert resolve("Ollama: llama3.2:3b ") == resolve("ollama:llama3.2:3b")
    assert resolve("OFFLINE") == ModelSpec("offline")


@pytest.mark.parametrize("variable, given, url", [
    ("OLLAMA_HOST", "localhost:11434", "http://localhost:11434/v1"),
    ("OLLAMA_HOST", "http://localhost:11434/v1", "http://localhost:11434/v1"),
    ("OLLAMA_HOST", "http://gpu-box:11434/v1/", "http://gpu-box:11434/v1"),
    ("OPENAI_BASE_URL", "http://gateway.internal:4000", "http://gateway.internal:4000/v1"),
    ("OPENAI_BASE_URL", "https://proxy.example.org/openai/v1/",
     "https://proxy.example.org/openai/v1"),
    ("OPENAI_COMPATIBLE_BASE_URL", "localhost:1234", "http://localhost:1234/v1"),
    ("OPENAI_COMPATIBLE_BASE_URL", "http://vllm.lan:8000/", "http://vllm.lan:8000/v1"),
])
def test_addresses_as_people_write_them(monkeypatch, variable, given, url):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa")
    monkeypatch.setenv(variable, given)
    provider = {"OLLAMA_HOST": "ollama", "OPENAI_BASE_URL": "openai"}.get(
        variable, "openai-compatible")
    assert resolve(f"{provider}:some-model").base_url == url
    assert resolve("openai-compatible:m@http://127.0.0.1:8080").base_url == \
        "http://127.0.0.1:8080/v1"


@pytest.mark.parametrize(("name", "model", "url"), [
    ("openai-compatible:qwen@localhost:8000", "qwen", "http://localhost:8000/v1"),
    ("openai-compatible:qwen@vllm.lan/v1", "qwen", "http://vllm.lan/v1"),
    ("openai-compatible:team@model@http://h:1/v1", "team@model", "http://h:1/v1"),
])
def test_an_address_in_the_name_needs_no_scheme(monkeypatch, name, model, url):
    monkeypatch.delenv("OPENAI_COMPATIBLE_BASE_URL", raising=False)
    spec = resolve(name)
    assert (spec.model, spec.base_url) == (model, url)


def test_an_at_sign_without_an_address_stays_in_the_id(monkeypatch):
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:9/v1")
    assert resolve("openai-compatible:coder@2024").model == "coder@2024"


async def test_addresses_without_scheme_or_v1_reach_the_server(monkeypatch, tmp_path):
    from llm_server import chat_analysis
    from test_openai_generator import CODE, request

    ollama = ChatServer(key=None, models=("llama3.2:3b",), ollama=True).start()
    vllm = ChatServer(key=None).start()
    monkeypatch.setenv("OLLAMA_HOST", f"{ollama.url}/v1")
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", vllm.url.removeprefix("http://"))
    try:
        ollama.script(chat_analysis(CODE))
        vllm.script(chat_analysis(CODE))
        assert (await make_generator("ollama:llama3.2:3b").generate(request())).code == CODE
        assert (await make_generator("openai-compatible:m").generate(request())).code == CODE
    finally:
        ollama.stop()
        vllm.stop()


def test_the_magic_says_which_provider_was_meant_without_a_traceback(tips, capsys):
    shell = analyst_shell(backend="local")
    shell.user_ns["tips"] = tips
    try:
        shell.run_cell_magic("analyze", "tips --yes --model olama:qwen2.5-coder:7b",
                             "Mean tip")
        shell.run_cell_magic("analyze", "tips --yes --model ollama:", "Mean tip")
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    said = capsys.readouterr()
    assert "%%analyze: Unknown model provider 'olama'" in said.err
    assert "Did you mean ollama:qwen2.5-coder:7b?" in said.err
    assert "%%analyze: The model 'ollama:' names no model id." in said.err
    assert "Traceback" not in said.err + said.out


# -- the probe ----------------------------------------------------------------------------
def test_models_command_lists_what_answers(monkeypatch, capsys):
    claude = MessagesServer().start()
    openai_server = ChatServer(models=("gpt-4.1", "gpt-4.1-mini")).start()
    ollama = ChatServer(key=None, models=("qwen2.5-coder:7b",), ollama=True).start()
    vllm = ChatServer(key=None, models=("Qwen/Qwen2.5-Coder-32B-Instruct",)).start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-probe")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", claude.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{openai_server.url}/v1")
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", f"{vllm.url}/v1")
    try:
        assert main(["models"]) == 0
    finally:
        for server in (claude, openai_server, ollama, vllm):
            server.stop()
    shown = capsys.readouterr().out
    assert f"[ok] anthropic          answers at {claude.url}" in shown
    assert "models: claude-sonnet-5-5, claude-opus-5-5" in shown
    assert "models: gpt-4.1, gpt-4.1-mini" in shown
    assert f"[ok] ollama             answers at {ollama.url}" in shown
    assert "models: qwen2.5-coder:7b" in shown
    assert "models: Qwen/Qwen2.5-Coder-32B-Instruct" in shown
    assert "[!!]" not in shown


def test_models_command_says_what_is_wrong_within_its_time_limit(monkeypatch, capsys):
    openai_server = ChatServer(models=("gpt-4.1",)).start()
    port = free_port()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{openai_server.url}/v1")
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    started = time.monotonic()
    try:
        assert main(["models", "--timeout", "2"]) == 0
    finally:
        openai_server.stop()
    assert time.monotonic() - started < 10
    shown = capsys.readouterr().out
    assert "refused the key (401)" in shown and "-> Check OPENAI_API_KEY." in shown
    assert f"[!!] ollama             does not answer at http://127.0.0.1:{port}" in shown
    assert "ollama serve" in shown
    assert "[--] anthropic          not configured" in shown and "ANTHROPIC_API_KEY" in shown
    assert "OPENAI_COMPATIBLE_BASE_URL" in shown


def test_the_notebook_lists_models_too(monkeypatch, capsys):
    ollama = ChatServer(key=None, models=("llama3.2:3b", "qwen2.5-coder:7b"), ollama=True)
    ollama.start()
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    shell = analyst_shell()
    try:
        shell.run_line_magic("analyze", "models")
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
        ollama.stop()
    shown = capsys.readouterr().out
    assert "models: llama3.2:3b, qwen2.5-coder:7b" in shown and "[ok] offline" in shown
    assert "analyze" not in shell.magics_manager.magics["line"]  # unloaded with the extension
