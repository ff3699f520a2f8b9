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
A prompt that is too long is retried once with a compact data context.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import anthropic

from ..errors import GenerationError
from ..prose import plain_text
from .base import CodeGenerator, GeneratedCode, GenerationRequest
from .cache import ResponseCache, cache_key
from .grounding import ground_insights
from .pricing import usage_dict
from .prompts import (
    INSIGHTS_PROMPT,
    PROMPT_VERSION,
    SUBMIT_ANALYSIS,
    SUBMIT_INSIGHTS,
    SYSTEM_PROMPT,
    analysis_message,
    compact_context,
    insights_message,
    render,
)

# The newest Sonnet the installed SDK lists and does not mark deprecated
# (tests/test_claude_generator.py checks this against the SDK).
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"
# Room for adaptive thinking plus a long cell; small enough for a non-streaming request.
MAX_TOKENS = 16_000
INSIGHT_MAX_TOKENS = 4_000
MAX_INSIGHTS = 5
MAX_SERVER_MESSAGE = 300
SCHEMA_INSIGHTS = (
    "No written insights: in privacy mode 'schema' the results stay on this machine and "
    "are not sent to Claude."
)

FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)
PYTHON_FENCES = ("", "python", "py", "python3")
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
TOO_LONG = re.compile(r"too long|too large|context (length|window)", re.IGNORECASE)


class PromptTooLong(GenerationError):
    """The request exceeded the model's context window (retried once with less context)."""


class ClaudeGenerator(CodeGenerator):
    name = "Claude"
    can_repair = True

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        use_cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        max_retries: int = 3,
        timeout: float = 300.0,
    ):
        self._api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not self._api_key:
            raise GenerationError(
                "No Anthropic API key was given.",
                "Set ANTHROPIC_API_KEY (or pass anthropic_api_key=...), or use the offline "
                "generator with --model offline.",
            )
        self.model = model or DEFAULT_MODEL
        self.max_retries = max_retries
        self.timeout = timeout
        self.cache = ResponseCache(cache_dir) if use_cache else None

    async def generate(self, request: GenerationRequest) -> GeneratedCode:
        key = cache_key(request, self.model, PROMPT_VERSION)
        if self.cache and not request.fresh and (hit := self.cache.get(key)):
            return hit
        try:
            response = await self._send(SYSTEM_PROMPT, analysis_message(request), SUBMIT_ANALYSIS)
        except PromptTooLong:
            smaller = analysis_message(request, compact_context(request.context))
            try:
                response = await self._send(SYSTEM_PROMPT, smaller, SUBMIT_ANALYSIS)
            except PromptTooLong as exc:
                raise GenerationError(
                    f"{exc.problem} A compact data description did not fit either.",
                    "Analyse fewer columns (e.g. %%analyze df[[...]]) or use privacy mode "
                    "'schema'.",
                ) from None
        code, explanation = parse_analysis(response)
        answer = GeneratedCode(
            code=code,
            explanation=explanation,
            generator="claude",
            model=self.model,
            usage=usage_dict(self.model, response.usage),
        )
        if self.cache:
            self.cache.put(key, answer)
        return answer

    async def insights(
        self, request: GenerationRequest, metrics: dict[str, Any], output: str
    ) -> tuple[list[str], dict[str, Any]]:
        if request.context.mode == "schema":
            # Metrics and printed output are cell values and aggregates of them.
            return [SCHEMA_INSIGHTS], {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        message = insights_message(request.question, metrics, output)
        response = await self._send(
            INSIGHTS_PROMPT, message, SUBMIT_INSIGHTS, max_tokens=INSIGHT_MAX_TOKENS
        )
        statements = [s for s in map(plain_text, parse_insights(response)) if s]
        grounded = ground_insights(statements[:MAX_INSIGHTS], metrics, output, request.question)
        return grounded, usage_dict(self.model, response.usage)

    def preview(self, request: GenerationRequest) -> str:
        base_url = os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        url = f"{base_url.rstrip('/')}/v1/messages"
        header = f"POST {url}  model={self.model}  max_tokens={MAX_TOKENS}"
        prompt = render(SYSTEM_PROMPT, analysis_message(request))
        return f"{header}\n\n{prompt}\n=== tool ===\n{json.dumps(SUBMIT_ANALYSIS, indent=1)}\n"

    async def _send(
        self, system: str, message: str, tool: dict[str, Any], max_tokens: int = MAX_TOKENS
    ) -> Any:
        # A client per call: an httpx pool is bound to the event loop that opened it, and
        # notebooks and scripts may call us from different loops.
        client = anthropic.AsyncAnthropic(
            api_key=self._api_key, max_retries=self.max_retries, timeout=self.timeout
        )
        async with client:
            try:
                return await client.messages.create(
                    model=self.model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=[{"role": "user", "content": message}],
                    tools=[tool],
                )
            except anthropic.AnthropicError as exc:
                raise self._explain(exc, str(client.base_url)) from None
            except ValueError as exc:  # the SDK refuses before sending, e.g. max_tokens too large
                raise GenerationError(
                    f"The request for {self.model} could not be prepared: {exc}",
                    "Choose a current model with --model.",
                ) from None

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
                "Check the network connection, a proxy, or ANTHROPIC_BASE_URL; "
                "--model offline works without a network.",
            )
        if not isinstance(exc, anthropic.APIStatusError):
            return GenerationError(f"The Anthropic SDK failed: {exc}", "Try again.")
        said = _server_message(exc)
        status = exc.status_code
        if isinstance(exc, anthropic.AuthenticationError):
            return GenerationError(
                f"Anthropic rejected the API key (401: {said}).",
                "Check ANTHROPIC_API_KEY (a key from console.anthropic.com), or use "
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
                "Analyse fewer columns or use privacy mode 'schema'.",
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


def parse_analysis(response: Any) -> tuple[str, str]:
    """``(code, explanation)`` from the tool call, or from a fenced block in plain text."""
    _check_complete(response)
    data = _tool_input(response, SUBMIT_ANALYSIS["name"])
    if data is not None:
        code, explanation = data.get("code"), data.get("explanation", "")
        if not isinstance(code, str) or not isinstance(explanation, str):
            raise GenerationError(
                "Claude's submit_analysis call did not contain code as text.",
                "Regenerate; if it happens again, rephrase the question.",
            )
        fenced = _fenced_code(code)
        code = fenced[0] if fenced else code
    else:
        text = _text(response)
        code, explanation = _fenced_code(text) or ("", "")
    code = code.strip("\n")
    if not code.strip():
        raise GenerationError(
            "Claude's reply contained no code.",
            "Regenerate, or rephrase the question so it asks for a computation on the data.",
        )
    # A reply in the text may have no explanation at all: describe what is known.
    return code + "\n", plain_text(explanation) or "Code written by Claude."


def parse_insights(response: Any) -> list[str]:
    _check_complete(response)
    data = _tool_input(response, SUBMIT_INSIGHTS["name"])
    if data is not None:
        items = data.get("insights")
        if isinstance(items, list):
            return [str(item) for item in items]
    # Plain-text fallback: one finding per bullet or non-empty line.
    lines = (BULLET.sub("", line).strip() for line in _text(response).splitlines())
    return [line for line in lines if line]


def _check_complete(response: Any) -> None:
    if response.stop_reason == "max_tokens":
        raise GenerationError(
            "Claude's reply was cut off at the output token limit, so its code is incomplete.",
            "Regenerate, or split the question into smaller analyses.",
        )
    if response.stop_reason == "refusal":
        raise GenerationError(
            "Claude declined to answer this question.",
            "Rephrase the question as an analysis of the data.",
        )


def _tool_input(response: Any, name: str) -> dict[str, Any] | None:
    for block in response.content:
        if block.type == "tool_use" and block.name == name:
            return block.input if isinstance(block.input, dict) else {}
    return None


def _text(response: Any) -> str:
    # Thinking blocks (adaptive thinking is on by default on current models) are skipped.
    return "\n".join(block.text for block in response.content if block.type == "text")


def _fenced_code(text: str) -> tuple[str, str] | None:
    """The Python code block of a Markdown reply (the longest one) and the prose around it."""
    blocks = [m for m in FENCE.finditer(text) if m.group(1).lower() in PYTHON_FENCES]
    if not blocks:
        return None
    best = max(blocks, key=lambda m: len(m.group(2)))
    prose = FENCE.sub(" ", text)
    return best.group(2), " ".join(prose.split())


def _server_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = str(error.get("message") or exc.message)
    return message[:MAX_SERVER_MESSAGE]
