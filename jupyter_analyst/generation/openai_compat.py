"""Code generation through the OpenAI Chat Completions API (the ``openai`` SDK).

One class serves OpenAI itself, Ollama (its ``/v1`` endpoint) and any server that
speaks the same API: vLLM, LM Studio, llama.cpp's server. The prompt contract,
parsing, cache and insights are the shared ones (``llm``).

Structured output: the ``submit_analysis`` function is offered as a tool. Servers
that refuse tools (Ollama for a model without tool support, vLLM without
``--enable-auto-tool-choice``) answer 400; the request is then sent again without
tools, with a prompt that asks for a fenced code block, and this generator does not
offer tools again. Small models that answer in text anyway are parsed the same way.

Local servers get no output token limit: their context is small, and vLLM refuses a
prompt plus ``max_tokens`` larger than it; they stop at the end of the answer.

Retries are the SDK's own (``max_retries``: 408, 409, 429, 5xx and connection errors
with backoff and ``retry-after``). Streaming (when the request carries a progress
callback) accumulates the chunks with the SDK's ``ChatCompletionStreamState`` into the
same ``ChatCompletion`` a plain request returns, usage included.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

try:
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState
except ImportError:  # the optional extra
    openai = None

from ..errors import GenerationError
from .llm import (
    SMALLER_PROMPT,
    TOO_LONG,
    LLMGenerator,
    Progress,
    PromptTooLong,
    Reply,
    server_message,
)
from .pricing import usage_dict
from .prompts import Task
from .providers import (
    COMPATIBLE,
    COMPATIBLE_BASE,
    COMPATIBLE_KEY,
    OLLAMA,
    OLLAMA_HOST,
    OPENAI,
    OPENAI_BASE,
    OPENAI_KEY,
    ModelSpec,
)

log = logging.getLogger(__name__)
NAMES = {OPENAI: "OpenAI", OLLAMA: "Ollama", COMPATIBLE: "OpenAI-compatible server"}
STOPS = {"length": "cut_off", "content_filter": "refused"}
# How servers say that they (or the model) cannot call tools.
TOOLS_REFUSED = re.compile(r"tool", re.IGNORECASE)


class OpenAIGenerator(LLMGenerator):
    """A model behind the Chat Completions API: OpenAI, Ollama or a compatible server."""

    def __init__(self, spec: ModelSpec, use_cache: bool = True,
                 cache_dir: str | os.PathLike | None = None, max_retries: int = 3,
                 timeout: float = 300.0):
        if openai is None:
            raise GenerationError(
                f"The model {spec.provider}:{spec.model} needs the openai package, which is "
                "not installed.",
                "pip install 'jupyter-analyst[openai]' (or pip install openai), then ask again.")
        super().__init__(spec.model, use_cache, cache_dir)
        self.provider = spec.provider
        self.name = NAMES[spec.provider]
        self.generator_id = spec.provider
        self.base_url = spec.base_url
        self._api_key = spec.api_key
        self.max_retries = max_retries
        self.timeout = timeout
        self.tools = True  # until the server refuses them

    @property
    def cache_model(self) -> str:
        return f"{self.provider}:{self.model}"

    def _request_line(self, task: Task) -> str:
        limit = f"  max_completion_tokens={task.max_tokens}" if self.provider == OPENAI else ""
        return f"POST {self.base_url}/chat/completions  model={self.model}{limit}"

    async def _send(self, task: Task, message: str, progress: Progress | None) -> Reply:
        # A client per call: an httpx pool is bound to the event loop that opened it.
        client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url,
                                    max_retries=self.max_retries, timeout=self.timeout)
        async with client:
            try:
                if self.tools:
                    try:
                        return await self._complete(client, task, message, progress, True)
                    except openai.BadRequestError as exc:
                        said = server_message(exc.body, exc.message)
                        if not TOOLS_REFUSED.search(said) or TOO_LONG.search(said):
                            raise
                        log.info("%s refused tools (%s); asking for a fenced block instead",
                                 self.describe(), said)
                        self.tools = False
                return await self._complete(client, task, message, progress, False)
            except openai.OpenAIError as exc:
                raise self._explain(exc) from None

    async def _complete(self, client: Any, task: Task, message: str,
                        progress: Progress | None, tools: bool) -> Reply:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": task.system if tools else task.text_system},
                         {"role": "user", "content": message}],
        }
        if tools:
            request["tools"] = [function_tool(task.tool)]
        if self.provider == OPENAI:  # a local server's context is better spent on the answer
            request["max_completion_tokens"] = task.max_tokens
        if progress is None:
            completion = await client.chat.completions.create(**request)
        else:
            state = ChatCompletionStreamState()
            stream = await client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True})
            async for chunk in stream:
                state.handle_chunk(chunk)
                for choice in chunk.choices:
                    progress.add(choice.delta.content)
                    for call in choice.delta.tool_calls or ():
                        progress.add(call.function.arguments if call.function else None)
            completion = state.current_completion_snapshot
        return self._reply(completion, task.tool["name"])

    def _reply(self, completion: Any, tool: str) -> Reply:
        if not completion.choices:
            raise GenerationError(f"{self.describe()} sent an empty reply (no choices).",
                                  "Regenerate; if it happens again, try another model.")
        choice = completion.choices[0]
        message = choice.message
        tool_input = None
        for call in message.tool_calls or ():
            if getattr(call, "function", None) is not None and call.function.name == tool:
                tool_input = _arguments(call.function.arguments)
                break
        refused = bool(getattr(message, "refusal", None))
        stop = "refused" if refused else STOPS.get(choice.finish_reason, "done")
        usage = completion.usage
        return Reply(tool_input=tool_input, text=message.content or "", stop=stop,
                     usage=usage_dict(self.provider, self.model,
                                      usage.prompt_tokens if usage else 0,
                                      usage.completion_tokens if usage else 0))

    def _explain(self, exc: Exception) -> GenerationError:
        """The user-facing error for an SDK exception (after the SDK's own retries)."""
        where, retries, model = self.base_url, self.max_retries, self.model
        if isinstance(exc, openai.APITimeoutError):
            return GenerationError(
                f"{self.describe()} did not answer within {self.timeout:g} seconds "
                f"({retries} retries).",
                "Try again; a local model answers faster when it is already loaded and "
                "smaller, or use --model offline.")
        if isinstance(exc, openai.APIConnectionError):
            if self.provider == OLLAMA:
                return GenerationError(
                    f"Nothing is listening at {OLLAMA_HOST} ({where.removesuffix('/v1')}).",
                    f"Start Ollama (`ollama serve`, or the Ollama app), or set {OLLAMA_HOST} "
                    "to the address it listens on.")
            variable = OPENAI_BASE if self.provider == OPENAI else COMPATIBLE_BASE
            return GenerationError(
                f"Could not connect to {self.name} at {where}.",
                f"Start the server, or check the network, a proxy and {variable}.")
        if not isinstance(exc, openai.APIStatusError):
            return GenerationError(f"The OpenAI SDK failed talking to {where}: {exc}",
                                   "Try again.")
        said = server_message(exc.body, exc.message)
        status = exc.status_code
        if isinstance(exc, openai.AuthenticationError):
            variable = OPENAI_KEY if self.provider == OPENAI else COMPATIBLE_KEY
            return GenerationError(f"{self.name} at {where} rejected the API key "
                                   f"({status}: {said}).",
                                   f"Check {variable}.")
        if isinstance(exc, openai.PermissionDeniedError):
            return GenerationError(f"This API key may not use {model} ({status}: {said}).",
                                   "Choose a model the key allows with --model.")
        if isinstance(exc, openai.NotFoundError):
            if self.provider == OLLAMA:
                return GenerationError(
                    f"Ollama has no model {model!r} ({status}: {said}).",
                    f"Pull it first: ollama pull {model} (ollama list shows what is there).")
            return GenerationError(
                f"{self.name} at {where} does not serve the model {model!r} "
                f"({status}: {said}).",
                "Pass a model id it serves (jupyter-analyst models lists them), and check "
                "that the address ends in /v1.")
        if isinstance(exc, openai.RateLimitError):
            wait = exc.response.headers.get("retry-after")
            return GenerationError(
                f"{self.name}'s rate limit was still exceeded after {retries} retries "
                f"({status}: {said}).",
                (f"Wait {wait} seconds and " if wait else "Wait a minute and ")
                + "try again, or raise the account's rate limits.")
        if TOO_LONG.search(said) or status == 413 or _code(exc) == "context_length_exceeded":
            fix = SMALLER_PROMPT
            if self.provider != OPENAI:
                fix += (" A local server's context can be raised, e.g. OLLAMA_CONTEXT_LENGTH="
                        "16384 for `ollama serve`, or vLLM's --max-model-len.")
            return PromptTooLong(f"The request is too long for {model} ({status}: {said}).",
                                 fix)
        if isinstance(exc, openai.InternalServerError):
            return GenerationError(
                f"{self.name} at {where} is failing ({status}: {said}); {retries} retries "
                "did not help.",
                "Try again in a few minutes; --model offline works meanwhile.")
        return GenerationError(
            f"{self.name} at {where} refused the request ({status}: {said}).",
            "Check that the server speaks the Chat Completions API and serves the model; "
            "if so, please report it with the message above.")


def function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool of the prompt contract (Anthropic's shape) as a Chat Completions function."""
    return {"type": "function", "function": {"name": tool["name"],
                                             "description": tool["description"],
                                             "parameters": tool["input_schema"]}}


def _arguments(text: str | None) -> dict[str, Any]:
    """A function call's arguments; unreadable JSON counts as a call without them."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _code(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str(error.get("code") or "")
