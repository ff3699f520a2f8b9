"""``provider:model`` names, the settings each provider reads, and a probe of each.

A model is named ``anthropic:<id>`` (or a bare Claude id), ``openai:<id>``,
``ollama:<id>``, ``openai-compatible:<id>`` (``@<url>`` may follow the id) or
``offline``. The environment is read when a name is resolved, that is when a
question is asked, so a key or address set later applies to the next question.
"""

from __future__ import annotations

import difflib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ..errors import GenerationError

OFFLINE = "offline"
ANTHROPIC, OPENAI, OLLAMA, COMPATIBLE = "anthropic", "openai", "ollama", "openai-compatible"
PROVIDERS = (ANTHROPIC, OPENAI, OLLAMA, COMPATIBLE)

ANTHROPIC_KEY = "ANTHROPIC_API_KEY"
ANTHROPIC_BASE = "ANTHROPIC_BASE_URL"
OPENAI_KEY = "OPENAI_API_KEY"
OPENAI_BASE = "OPENAI_BASE_URL"
OLLAMA_HOST = "OLLAMA_HOST"
COMPATIBLE_BASE = "OPENAI_COMPATIBLE_BASE_URL"
COMPATIBLE_KEY = "OPENAI_COMPATIBLE_API_KEY"

DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
OLLAMA_PORT = 11434
# Servers on the user's machine take no key, but the SDK insists on one.
NO_KEY = "not-needed"
PROBE_TIMEOUT = 3.0  # seconds per provider for `jupyter-analyst models`
LISTED_MODELS = 8
EXAMPLE_URL = "http://localhost:8000/v1"
# Names people give the servers that openai-compatible: covers, and Anthropic's model.
SERVER_NAMES = {"vllm": COMPATIBLE, "lmstudio": COMPATIBLE, "lm-studio": COMPATIBLE,
                "llamacpp": COMPATIBLE, "llama.cpp": COMPATIBLE, "llama-cpp": COMPATIBLE,
                "llama-server": COMPATIBLE, "claude": ANTHROPIC}
OPENAI_MODEL_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: who serves it, where, and with which key (never shown)."""

    provider: str  # "offline" or one of PROVIDERS
    model: str | None = None  # None: the provider's default (Claude only)
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def local(self) -> bool:
        return self.provider in (OFFLINE, OLLAMA, COMPATIBLE)


def resolve(name: str | None, anthropic_key: str | None = None) -> ModelSpec:
    """The spec of ``name`` with the environment as it is now.

    ``None`` is Claude's default model when an Anthropic key is set, else offline. A
    provider named without its key or address is an error naming the variable.
    """
    anthropic_key = anthropic_key or os.environ.get(ANTHROPIC_KEY) or None
    if name is None and not anthropic_key:
        return ModelSpec(OFFLINE)
    name = (name or ANTHROPIC + ":").strip()
    if name.lower() == OFFLINE:
        return ModelSpec(OFFLINE)
    provider, colon, model = name.partition(":")
    provider, model = provider.strip().lower(), model.strip()
    if not colon:  # a bare Claude id, as before providers were named
        if not name.lower().startswith("claude"):
            raise _unknown(name, f"The model {name!r} names no provider.", name)
        provider, model = ANTHROPIC, name
    if provider not in PROVIDERS:
        raise _unknown(name, f"Unknown model provider {provider!r} in {name!r}.", model,
                       provider)
    if provider == ANTHROPIC:
        if not anthropic_key:
            raise _missing(name, f"Set {ANTHROPIC_KEY} (or pass anthropic_api_key=...)")
        return ModelSpec(ANTHROPIC, model or None, _anthropic_url(), anthropic_key)
    if provider == COMPATIBLE:
        model, base_url = _split_address(model)
        base_url = base_url or os.environ.get(COMPATIBLE_BASE)
        _require_id(name, model)
        if not base_url:
            raise _missing(name, f"Set {COMPATIBLE_BASE} (e.g. {EXAMPLE_URL}) or write "
                                 f"{COMPATIBLE}:{model}@{EXAMPLE_URL}", "the server's address")
        return ModelSpec(COMPATIBLE, model, api_url(base_url),
                         os.environ.get(COMPATIBLE_KEY) or NO_KEY)
    _require_id(name, model)
    if provider == OLLAMA:
        return ModelSpec(OLLAMA, model, f"{ollama_host()}/v1", NO_KEY)
    key = os.environ.get(OPENAI_KEY)
    if not key:
        raise _missing(name, f"Set {OPENAI_KEY}")
    return ModelSpec(OPENAI, model, api_url(os.environ.get(OPENAI_BASE) or DEFAULT_OPENAI_URL),
                     key)


def _split_address(model: str) -> tuple[str, str | None]:
    """``id@address`` as the id and the server's address; the address may be written
    without a scheme (``qwen@localhost:8000``). A tail without a port, path or dot
    (``name@2024``) is part of the id."""
    head, at, tail = model.rpartition("@")
    if at and head and (tail == "localhost" or any(c in tail for c in ":/.")):
        return head, tail
    return model, None


def ollama_host() -> str:
    """``OLLAMA_HOST`` as a URL; like Ollama itself, accept "host", "host:port" or a URL.

    The address of Ollama's OpenAI endpoint (``.../v1``) is taken for the host it is on.
    """
    given = (os.environ.get(OLLAMA_HOST) or DEFAULT_OLLAMA_HOST).strip().rstrip("/")
    parts = urlsplit(given if "://" in given else f"http://{given}")
    port = f":{parts.port}" if parts.port else f":{OLLAMA_PORT}" if parts.scheme == "http" else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path.removesuffix('/v1')}"


def api_url(given: str) -> str:
    """A Chat Completions base URL as people write it, as the SDK needs it: ``http://``
    when no scheme is given (a server on this network), ``/v1`` when no path is (the
    SDK appends ``/chat/completions`` to exactly this URL), no trailing slash."""
    given = given.strip().rstrip("/")
    given = given if "://" in given else f"http://{given}"
    return given if urlsplit(given).path else f"{given}/v1"


def _anthropic_url() -> str:
    return (os.environ.get(ANTHROPIC_BASE) or DEFAULT_ANTHROPIC_URL).rstrip("/")


def _require_id(name: str, model: str) -> None:
    if not model:
        raise GenerationError(f"The model {name!r} names no model id.",
                              "Write the id after the provider, e.g. ollama:qwen2.5-coder:7b "
                              "or openai:gpt-4.1-mini.")


def _unknown(name: str, problem: str, model: str, provider: str = "") -> GenerationError:
    """A name without a known provider, with the name the user most likely meant."""
    meant = SERVER_NAMES.get(provider) or next(
        iter(difflib.get_close_matches(provider, PROVIDERS, n=1, cutoff=0.6)), None)
    if meant:
        fix = f"Did you mean {meant}:{model}?"
    elif not provider and model.lower().startswith(OPENAI_MODEL_PREFIXES):
        fix = f"For OpenAI's model write openai:{model}."
    else:  # e.g. "qwen2.5-coder:7b": an Ollama tag is read as provider "qwen2.5-coder"
        fix = (f"For a model in Ollama write ollama:{name}; for another server that speaks "
               f"the OpenAI API (vLLM, LM Studio, llama.cpp, a hosted one) write "
               f"{COMPATIBLE}:<id>@<its /v1 URL>.")
    return GenerationError(problem, f"{fix} Models are named provider:id with a provider of "
                                    f"{', '.join(PROVIDERS)}, or offline.")


def _missing(name: str, how: str, what: str = "an API key") -> GenerationError:
    return GenerationError(f"The model {name!r} needs {what}, and none is set.",
                           f"{how}, or choose another model (--model offline works without "
                           "one).")


# -- probing (`jupyter-analyst models`, `%analyze models`) -------------------------------
@dataclass
class ProviderStatus:
    """What one provider looks like from here: configured, answering, serving which models."""

    provider: str
    configured: bool
    answers: bool = False
    where: str = ""
    models: list[str] = field(default_factory=list)
    problem: str = ""
    fix: str = ""

    def lines(self) -> list[str]:
        if not self.configured:
            mark, state = "--", "not configured"
        else:
            mark, state = ("ok", "answers") if self.answers else ("!!", "does not answer")
        out = [f"[{mark}] {self.provider:<18} {state}" + (f" at {self.where}" if self.where
                                                          else "")]
        if self.models:
            more = len(self.models) - LISTED_MODELS
            shown = ", ".join(self.models[:LISTED_MODELS])
            out.append(f"     models: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        if self.problem:
            out.append(f"     {self.problem}")
        if self.fix:
            out.append(f"     -> {self.fix}")
        return out


def probe_all(timeout: float = PROBE_TIMEOUT) -> list[ProviderStatus]:
    """Every provider, probed at once (threads: this also runs inside a kernel's event loop)
    with a short, bounded request each."""
    offline = ProviderStatus(OFFLINE, True, True,
                             problem="templates for common analyses, on this machine; nothing "
                                     "is sent")
    probes = (_probe_anthropic, lambda c: _probe_openai(c, OPENAI), _probe_ollama,
              lambda c: _probe_openai(c, COMPATIBLE))
    with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(len(probes)) as pool:
        return [offline, *pool.map(lambda probe: probe(client), probes)]


def describe_all(timeout: float = PROBE_TIMEOUT) -> str:
    statuses = probe_all(timeout)
    lines = [line for status in statuses for line in status.lines()]
    lines.append("Choose one with --model provider:id, e.g. --model ollama:qwen2.5-coder:7b "
                 "(docs/models.md).")
    return "\n".join(lines)


def _probe_anthropic(client: httpx.Client) -> ProviderStatus:
    key = os.environ.get(ANTHROPIC_KEY)
    if not key:
        return ProviderStatus(ANTHROPIC, False, fix=f"Set {ANTHROPIC_KEY} to use Claude.")
    url = _anthropic_url()
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return _get_models(client, ProviderStatus(ANTHROPIC, True, where=url),
                             f"{url}/v1/models", headers, ANTHROPIC_KEY, ANTHROPIC_BASE)


def _probe_openai(client: httpx.Client, provider: str) -> ProviderStatus:
    if provider == OPENAI:
        key, base = os.environ.get(OPENAI_KEY), os.environ.get(OPENAI_BASE) or DEFAULT_OPENAI_URL
        if not key:
            return ProviderStatus(OPENAI, False, fix=f"Set {OPENAI_KEY} to use OpenAI models.")
        key_variable, base_variable = OPENAI_KEY, OPENAI_BASE
    else:
        key, base = os.environ.get(COMPATIBLE_KEY), os.environ.get(COMPATIBLE_BASE)
        if not base:
            return ProviderStatus(COMPATIBLE, False,
                                  fix=f"Set {COMPATIBLE_BASE} (e.g. {EXAMPLE_URL}) for vLLM, "
                                      "LM Studio or llama.cpp's server, or name the URL in "
                                      "the model: openai-compatible:<id>@<url>.")
        key_variable, base_variable = COMPATIBLE_KEY, COMPATIBLE_BASE
    base = api_url(base)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return _get_models(client, ProviderStatus(provider, True, where=base),
                             f"{base}/models", headers, key_variable, base_variable)


def _probe_ollama(client: httpx.Client) -> ProviderStatus:
    host = ollama_host()
    status = ProviderStatus(OLLAMA, OLLAMA_HOST in os.environ, where=host)
    try:
        response = client.get(f"{host}/api/tags")
    except httpx.HTTPError as exc:
        status.problem = f"Nothing is listening at {host} ({type(exc).__name__})."
        status.fix = (f"Start Ollama (`ollama serve`) or set {OLLAMA_HOST} to where it runs."
                      if status.configured else
                      f"Install and start Ollama to use local models, or set {OLLAMA_HOST}.")
        return status
    status.configured = True
    status.answers = response.status_code == 200
    if status.answers:
        tags = _json(response).get("models") or []
        status.models = [str(m.get("name")) for m in tags if isinstance(m, dict)]
        if not status.models:
            status.fix = "Pull a model first: ollama pull qwen2.5-coder:7b"
    else:
        status.problem = f"{host}/api/tags answered {response.status_code}."
        status.fix = f"Check that {OLLAMA_HOST} points at Ollama, not at another server."
    return status


def _get_models(client: httpx.Client, status: ProviderStatus, url: str,
                      headers: dict[str, str], key_variable: str, base_variable: str
                      ) -> ProviderStatus:
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        status.problem = f"Could not reach {url} ({type(exc).__name__})."
        status.fix = f"Start the server or check the network and {base_variable}."
        return status
    if response.status_code in (401, 403):
        status.problem = f"{url} refused the key ({response.status_code})."
        status.fix = f"Check {key_variable}."
    elif response.status_code != 200:
        status.problem = f"{url} answered {response.status_code}."
        status.fix = f"Check {base_variable}" + (
            "." if status.provider == ANTHROPIC else " (an OpenAI-style URL ends in /v1).")
    else:
        status.answers = True
        listed = _json(response).get("data") or []
        status.models = [str(m.get("id")) for m in listed if isinstance(m, dict)]
    return status


def _json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
