"""Code generation with Claude through the ``anthropic`` SDK (async client).

Structured output: the model is offered a ``submit_analysis`` tool and asked to
call it; ``tool_choice`` stays ``auto`` because current models (Sonnet 5.5, Opus
5.5) answer a forced tool choice with a 400, and ``temperature`` stays unset
because Sonnet 5 and later refuse non-default sampling parameters. A reply
without the tool call falls back to the longest fenced Python block in its text.

Retries: the SDK's own machinery (``max_retries``) retries 408/409/429/5xx/529
and connection errors with exponential backoff and honours ``retry-after`` and
``retry-after-ms``, which is what is needed, so it is used as is. What is left
after the retries becomes a ``GenerationError`` naming the problem and the fix.
A prompt that is too long is retried once with a compact data context (``llm``).

Streaming: with a progress callback on the request the reply is streamed
(``messages.stream``) and its final message, the same ``Message`` a plain request
returns, is parsed; without one a plain request is made.
"""

from __future__ import annotations

import os
from typing import Any

import anthropic

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
from .providers import ANTHROPIC_BASE, ANTHROPIC_KEY, DEFAULT_ANTHROPIC_URL

# The newest Sonnet the installed SDK lists and does not mark deprecated
# (tests/test_claude_generator.py checks this against the SDK).
DEFAULT_MODEL = "claude-sonnet-5-5"
STOPS = {"max_tokens": "cut_off", "refusal": "refused"}


class ClaudeGenerator(LLMGenerator):
    name = "Claude"
    generator_id = "claude"

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        use_cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        max_retries: int = 3,
        timeout: float = 300.0,
    ):
        self._api_key = api_key or os.environ.get(ANTHROPIC_KEY)
        if not self._api_key:
            raise GenerationError(
                "No Anthropic API key was given.",
                f"Set {ANTHROPIC_KEY} (or pass anthropic_api_key=...), or use the offline "
                "generator with --model offline.",
            )
        super().__init__(model or DEFAULT_MODEL, use_cache, cache_dir)
        self.max_retries = max_retries
        self.timeout = timeout

    def _request_line(self, task: Task) -> str:
        base_url = os.environ.get(ANTHROPIC_BASE) or DEFAULT_ANTHROPIC_URL
        return (f"POST {base_url.rstrip('/')}/v1/messages  model={self.model}  "
                f"max_tokens={task.max_tokens}")

    async def _send(self, task: Task, message: str, progress: Progress | None) -> Reply:
        # A client per call: an httpx pool is bound to the event loop that opened it, and
        # notebooks and scripts may call us from different loops.
        client = anthropic.AsyncAnthropic(
            api_key=self._api_key, max_retries=self.max_retries, timeout=self.timeout
        )
        request = dict(model=self.model, max_tokens=task.max_tokens, system=task.system,
                       messages=[{"role": "user", "content": message}], tools=[task.tool])
        async with client:
            try:
                if progress is None:
                    response = await client.messages.create(**request)
                else:
                    async with client.messages.stream(**request) as stream:
                        async for event in stream:
                            if event.type == "content_block_delta":
                                delta = event.delta
                                progress.add(getattr(delta, "text", None), text=True)
                                progress.add(getattr(delta, "partial_json", None))
                                progress.add(getattr(delta, "thinking", None), thinking=True)
                        response = await stream.get_final_message()
            except anthropic.AnthropicError as exc:
                raise self._explain(exc, str(client.base_url)) from None
            except ValueError as exc:  # the SDK refuses before sending, e.g. max_tokens too large
                raise GenerationError(
                    f"The request for {self.model} could not be prepared: {exc}",
                    "Choose a current model with --model.",
                ) from None
        return _reply(response, task.tool["name"], self.model)

    def _explain(self, exc: anthropic.AnthropicError, base_url: str) -> GenerationError:
        """The user-facing error for an SDK exception (after the SDK's own retries)."""
        model, retries = self.model, self.max_retries
        if isinstance(exc, anthropic.APITimeoutError):
            return GenerationError(
                f"Claude did not answer within {self.timeout:g} seconds ({retries} retries).",
                "Try again; for long analyses raise the timeout, or use --model offline.",
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return GenerationError(
                f"Could not connect to the Anthropic API at {base_url}.",
                f"Check the network connection, a proxy, or {ANTHROPIC_BASE}; "
                "--model offline works without a network.",
            )
        if not isinstance(exc, anthropic.APIStatusError):
            return GenerationError(f"The Anthropic SDK failed: {exc}", "Try again.")
        said = server_message(exc.body, exc.message)
        status = exc.status_code
        if isinstance(exc, anthropic.AuthenticationError):
            return GenerationError(
                f"Anthropic rejected the API key (401: {said}).",
                f"Check {ANTHROPIC_KEY} (a key from console.anthropic.com), or use "
                "--model offline.",
            )
        if isinstance(exc, anthropic.PermissionDeniedError):
            return GenerationError(
                f"This API key may not use {model} (403: {said}).",
                "Choose a model your workspace allows with --model, or check the key's "
                "permissions in the Anthropic Console.",
            )
        if isinstance(exc, anthropic.NotFoundError):
            return GenerationError(
                f"The model {model!r} was not found (404: {said}).",
                f"Pass a current model id with --model, for example {DEFAULT_MODEL}.",
            )
        if isinstance(exc, anthropic.PaymentRequiredError) or "credit balance" in said.lower():
            return GenerationError(
                f"The Anthropic account cannot pay for this request ({status}: {said}).",
                "Add credits or a payment method in the Anthropic Console, or use "
                "--model offline.",
            )
        if isinstance(exc, anthropic.RateLimitError):
            wait = exc.response.headers.get("retry-after")
            return GenerationError(
                f"Anthropic's rate limit was still exceeded after {retries} retries (429: {said}).",
                (f"Wait {wait} seconds and " if wait else "Wait a minute and ")
                + "try again, or raise the workspace's rate limits in the Anthropic Console.",
            )
        if isinstance(exc, anthropic.ContentTooLargeError) or (
            isinstance(exc, anthropic.BadRequestError) and TOO_LONG.search(said)
        ):
            return PromptTooLong(
                f"The request is too long for {model} ({status}: {said}).",
                SMALLER_PROMPT,
            )
        if isinstance(exc, anthropic.InternalServerError):
            state = "overloaded" if status == 529 else "failing"
            return GenerationError(
                f"The Anthropic API is {state} ({status}: {said}); {retries} retries did "
                "not help.",
                "Try again in a few minutes; --model offline works meanwhile.",
            )
        return GenerationError(
            f"The Anthropic API refused the request ({status}: {said}).",
            "This is likely a bug in jupyter-analyst or an unsupported --model; please "
            "report it with the message above.",
        )


def _reply(response: Any, tool: str, model: str) -> Reply:
    tool_input = next((block.input if isinstance(block.input, dict) else {}
                       for block in response.content
                       if block.type == "tool_use" and block.name == tool), None)
    # Thinking blocks (adaptive thinking is on by default on current models) are skipped.
    text = "\n".join(block.text for block in response.content if block.type == "text")
    usage = response.usage
    return Reply(tool_input=tool_input, text=text, stop=STOPS.get(response.stop_reason, "done"),
                 usage=usage_dict("anthropic", model, usage.input_tokens, usage.output_tokens,
                                  getattr(usage, "cache_creation_input_tokens", None),
                                  getattr(usage, "cache_read_input_tokens", None)))
