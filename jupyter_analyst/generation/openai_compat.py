"""Code generation through the OpenAI Chat Completions API (the ``openai`` SDK).

One class serves OpenAI itself, Ollama (its ``/v1`` endpoint) and any server that
speaks the same API: vLLM, LM Studio, llama.cpp's server. The prompt contract,
parsing, cache and insights are the shared ones (``llm``).

Structured output: the ``submit_analysis`` function is offered as a tool. Servers
that refuse tools (Ollama for a model without tool support, vLLM without
``--enable-auto-tool-choice``: 400; llama.cpp's server without ``--jinja``: 500) say so
in their error; the request is then sent again without
tools, with a prompt that asks for a fenced code block, and this generator does not
offer tools again. Small models that answer in text anyway are parsed the same way.

Local servers get no output token limit: their context is small, and vLLM refuses a
prompt plus ``max_tokens`` larger than it; they stop at the end of the answer.

Retries are the SDK's own (``max_retries``: 408, 409, 429, 5xx and connection errors
with backoff and ``retry-after``).

Streaming (when the request carries a progress callback) adds the chunks up here, not
with the SDK's ``ChatCompletionStreamState``, which raises on what real servers send: a
tool-call delta without ``index`` (Gemini, mistral.rs, some proxies), or the function
name repeated in every delta (it would be concatenated). What is accepted: the OpenAI
shape (``index`` on every delta, ``id`` and name in the first, the arguments in pieces,
as vLLM and llama.cpp's server send it), Ollama's whole tool call in one chunk (with
``finish_reason`` "stop" or "tool_calls"), a reasoning field (``reasoning_content``:
DeepSeek, llama.cpp, LM Studio; ``reasoning``: vLLM, Ollama), which is counted as
thinking and never parsed, and usage in the last chunk that has one. A server that
sends no usage at all gets an estimate from the characters, marked ``estimated``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

try:
    import openai
except ImportError:  # the optional extra
    openai = None

from ..errors import GenerationError
from .llm import (
    CHARS_PER_TOKEN,
    SMALLER_PROMPT,
    TOO_LONG,
    LLMGenerator,
    Progress,
    PromptTooLong,
    Reply,
    decoded_arguments,
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
                    # llama.cpp's server without --jinja answers 500 ("tools param requires
                    # --jinja flag"), after the SDK's retries.
                    except (openai.BadRequestError, openai.InternalServerError) as exc:
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
            answer = Answer.of(await client.chat.completions.create(**request))
        else:
            answer = Answer()
            stream = await client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True})
            async for chunk in stream:
                answer.add(chunk, progress)
            if tools and answer.received and not (answer.text.strip() or answer.calls):
                # Some Ollama versions drop a tool call from the stream (ollama#12557) and
                # send nothing else; the same request unstreamed carries it.
                log.info("%s streamed an empty reply; asking again without streaming",
                         self.describe())
                answer = Answer.of(await client.chat.completions.create(**request))
        if not answer.received:
            raise GenerationError(f"{self.describe()} sent an empty reply (no choices).",
                                  "Regenerate; if it happens again, try another model.")
        prompt = sum(len(m["content"]) for m in request["messages"])
        return self._reply(answer, task.tool["name"], prompt)

    def _reply(self, answer: Answer, tool: str, prompt_chars: int) -> Reply:
        # Unreadable arguments count as a call without them.
        tool_input = next((decoded_arguments(call.get("arguments")) or {}
                           for call in answer.calls if call.get("name") == tool), None)
        stop = "refused" if answer.refusal else STOPS.get(answer.finish, "done")
        usage = answer.usage
        if usage is not None:
            counted = usage_dict(self.provider, self.model, _tokens(usage, "prompt_tokens"),
                                 _tokens(usage, "completion_tokens"))
        else:  # the server ignored include_usage: count as the status line does
            written = len(answer.text) + sum(len(str(c.get("arguments") or ""))
                                             for c in answer.calls)
            counted = usage_dict(self.provider, self.model, prompt_chars // CHARS_PER_TOKEN,
                                 written // CHARS_PER_TOKEN)
            if counted["cost_usd"]:  # a price on a guess would look like a bill
                counted["cost_usd"] = None
            counted["estimated"] = True
        return Reply(tool_input=tool_input, text=answer.text, stop=stop, usage=counted)

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
        if isinstance(exc, openai.InternalServerError) and "memory" in said.lower():
            # Ollama: "model requires more system memory (5.6 GiB) than is available"
            return GenerationError(
                f"{self.name} at {where} cannot load {model} ({status}: {said}).",
                "Choose a smaller model (fewer parameters, e.g. a 3b or 7b tag, or a q4 "
                "quantisation), or close what uses the memory, then ask again.")
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


@dataclass
class Answer:
    """One reply of the Chat Completions API, plain or added up from streamed chunks."""

    text: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments"}
    finish: str | None = None
    refusal: str = ""
    usage: Any = None
    received: bool = False  # a choice arrived at all

    @classmethod
    def of(cls, completion: Any) -> Answer:
        if not completion.choices:
            return cls(usage=completion.usage)
        choice = completion.choices[0]
        message = choice.message
        calls = [{"name": call.function.name, "arguments": call.function.arguments}
                 for call in message.tool_calls or ()
                 if getattr(call, "function", None) is not None]
        return cls(message.content or "", calls, choice.finish_reason,
                   getattr(message, "refusal", None) or "", completion.usage, True)

    def add(self, chunk: Any, progress: Progress) -> None:
        # Some servers send usage before their last chunks, which then have none.
        self.usage = getattr(chunk, "usage", None) or self.usage
        for choice in getattr(chunk, "choices", None) or ():
            if getattr(choice, "index", 0) not in (0, None):
                continue  # only one answer was asked for
            self.received = True
            if getattr(choice, "finish_reason", None):
                self.finish = choice.finish_reason
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            for name in ("reasoning_content", "reasoning"):
                progress.add(getattr(delta, name, None), thinking=True)
            if isinstance(delta.content, str):
                self.text += delta.content
                progress.add(delta.content, text=True)
            if isinstance(getattr(delta, "refusal", None), str):
                self.refusal += delta.refusal
            for piece in delta.tool_calls or ():
                call = self._call(getattr(piece, "index", None), getattr(piece, "id", None))
                function = getattr(piece, "function", None)
                if function is None:
                    continue
                if getattr(function, "name", None):
                    call["name"] = function.name  # sent once, or again in every delta
                arguments = getattr(function, "arguments", None)
                if isinstance(arguments, dict):  # an object instead of JSON text
                    call["arguments"] = arguments
                elif isinstance(arguments, str):
                    call["arguments"] = (call.get("arguments") or "") + arguments
                    progress.add(arguments)

    def _call(self, index: int | None, call_id: str | None) -> dict[str, Any]:
        """The call a tool-call delta continues: by ``index``; without one, the last call,
        unless the delta carries another call's ``id``."""
        if isinstance(index, int):
            while len(self.calls) <= index:
                self.calls.append({})
            call = self.calls[index]
        elif not self.calls or (call_id and self.calls[-1].get("id") not in (None, call_id)):
            call = {}
            self.calls.append(call)
        else:
            call = self.calls[-1]
        if call_id:
            call.setdefault("id", call_id)
        return call


def _tokens(usage: Any, name: str) -> int:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else 0


def _code(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str(error.get("code") or "")
