"""What every LLM generator shares, whichever API it speaks.

The prompt contract (``prompts``), the cache, the retry with a compact context when a
prompt is too long, the parsing of a reply into code and prose, grounded insights,
privacy mode 'schema' and the progress shown while a reply streams in live here. A
provider module only sends one request and turns the API's answer into a ``Reply``.
"""

from __future__ import annotations

import abc
import json
import os
import re
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenerationError
from ..prose import plain_text
from .base import BrokenCell, CodeGenerator, GeneratedCode, GenerationRequest
from .cache import ResponseCache, cache_key
from .grounding import ground_insights
from .prompts import (
    ANALYSIS,
    FIX,
    INSIGHTS,
    PROMPT_VERSION,
    Task,
    analysis_message,
    compact_context,
    fix_message,
    insights_message,
    render,
)

MAX_INSIGHTS = 5
MAX_SERVER_MESSAGE = 300
CHARS_PER_TOKEN = 4  # for the running count while streaming; the API's count comes at the end

# A Markdown code block: its language and its code. The closing fence must start a line
# (a ``` inside a string of the code does not end it); a block still open at the end of a
# complete reply (small models forget to close it) runs to the end.
FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)",
                   re.DOTALL | re.MULTILINE)
PYTHON_FENCES = ("python", "py", "python3", "ipython")
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
# How APIs and servers say the prompt does not fit: OpenAI and vLLM ("maximum context
# length", newer vLLM "longer than the maximum model length"), Anthropic ("prompt is too
# long"), LM Studio ("context length"), llama.cpp ("exceeds the available context size").
TOO_LONG = re.compile(r"too long|too large|context (length|window|size)|maximum context"
                      r"|maximum model length", re.IGNORECASE)
# Reasoning models that think aloud in their text (qwen3, deepseek-r1, QwQ through Ollama
# or a server without a reasoning parser) put the thinking before the answer.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# gpt-oss writes OpenAI's "harmony" format, which a server without its parser (an older
# vLLM, llama.cpp without --jinja, some LM Studio versions, a raw completion proxy) passes
# on as text: messages ``<|start|>{header}<|message|>{content}<|end|>``, the reply starting
# at the first header (``<|start|>assistant`` was the prompt's) and ending at ``<|return|>``
# or, for a tool call, ``<|call|>``. The header names the channel: ``analysis`` is the chain
# of thought, ``final`` the answer, ``commentary`` a tool call or a preamble for the user.
# A call names its recipient, ``to=functions.<name>``, in the channel or the role part of
# the header, with an optional ``<|constrain|>json`` or bare ``json``; a final channel may
# carry one too (``final json``). Calls to the built-in ``python`` and ``browser`` tools
# are part of the thinking. Sources: openai/harmony docs/format.md ("Message format",
# "Receiving tool calls", "Preambles"), llama.cpp's common_chat_parse_gpt_oss (both
# header orders), openai/harmony#56 (``final json``), vllm-project/vllm#42031 (a call
# written as text in the content of a server that parses harmony).
HARMONY = "<|channel|>"
HARMONY_MESSAGE = re.compile(r"(?:<\|start\|>)?([^<]*(?:<\|(?:channel|constrain)\|>[^<]*)*)"
                             r"<\|message\|>(.*?)(?=<\|(?:end|return|call|start|channel)\|>|\Z)",
                             re.DOTALL)
HARMONY_CHANNEL = re.compile(r"<\|channel\|>\s*(\w+)")
HARMONY_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
HARMONY_ANSWER = ("final", "commentary")
# DeepSeek's own tool-call tokens, which a server without its tool parser passes on, all
# after ``<｜tool▁calls▁begin｜>``: V3 writes ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}
# \n```json\n{arguments}\n```<｜tool▁call▁end｜>``, V3.1 ``<｜tool▁call▁begin｜>{name}
# <｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>`` (vLLM's DeepSeekV3ToolParser and
# DeepSeekV31ToolParser; google/adk-python#5654 shows V3's in the content).
DEEPSEEK_CALLS = "<｜tool▁calls▁begin｜>"
DEEPSEEK_CALL = re.compile(r"<｜tool▁call▁begin｜>(?:function<｜tool▁sep｜>)?([^\s<]+)\s*"
                           r"(?:<｜tool▁sep｜>)?\s*(?:```(?:json)?)?(.*?)\s*(?:```)?\s*"
                           r"<｜tool▁call▁end｜>", re.DOTALL)
# Local models whose server does not parse their tool calls write them as JSON text: in
# Qwen's <tool_call> tag, after Mistral's [TOOL_CALLS] (a list of calls) or Llama 3.1's
# <|python_tag|>, in a fence, or bare (older Ollama streamed calls as content).
TOOL_CALL_TEXT = re.compile(r"^\s*(?:<tool_call>|\[TOOL_CALLS\]|<\|python_tag\|>|```(?:json)?)?"
                            r"\s*([\[{].*[\]}])\s*(?:</tool_call>|```)?\s*$", re.DOTALL)


JSON = json.JSONDecoder()

SMALLER_PROMPT = "Analyse fewer columns (e.g. %%analyze df[[...]]) or use privacy mode 'schema'."


class PromptTooLong(GenerationError):
    """The request exceeded the model's context window (retried once with less context)."""


@dataclass
class Reply:
    """A model's answer, whichever API it came from."""

    tool_input: dict[str, Any] | None  # the arguments of the requested tool, if it was called
    text: str  # the prose of the reply (thinking left out)
    stop: str  # "done", "cut_off" (output token limit) or "refused"
    usage: dict[str, Any] = field(default_factory=dict)


class Progress:
    """Reports tokens received so far and time elapsed while a reply streams in.

    Thinking (a reasoning field, Claude's thinking blocks, ``<think>`` or harmony's analysis
    channel in the text) is counted apart: a model may think for a minute before it writes
    the first line of code, and the count of the answer should not jump back when the
    thinking ends.
    """

    def __init__(self, report: Callable[[str], None]):
        self.report = report
        self.started = time.monotonic()
        self.text = ""  # the reply's text so far, which may hold thinking
        self.other = 0  # characters of the answer outside the text (tool-call arguments)
        self.thought = 0  # characters of thinking sent apart from the text

    def add(self, piece: object, thinking: bool = False, text: bool = False) -> None:
        """Count ``piece``: thinking, text of the reply (``text``), or tool-call arguments."""
        if not isinstance(piece, str) or not piece:
            return
        if thinking:
            self.thought += len(piece)
        elif text:
            self.text += piece
        else:
            self.other += len(piece)
        prose, calls = answer_and_calls(self.text)
        answer_text = len(prose) + sum(len(arguments) for _, arguments in calls)
        answer = (answer_text + self.other) // CHARS_PER_TOKEN
        thought = (self.thought + len(self.text) - answer_text) // CHARS_PER_TOKEN
        elapsed = f"{time.monotonic() - self.started:.0f} s"
        if not thought:
            self.report(f"~{answer} tokens, {elapsed}")
        elif not answer:
            self.report(f"thinking, ~{thought} tokens, {elapsed}")
        else:
            self.report(f"~{answer} tokens after ~{thought} of thinking, {elapsed}")


class LLMGenerator(CodeGenerator):
    """A generator backed by a remote or local language model."""

    can_repair = True
    generator_id = ""  # GeneratedCode.generator, e.g. "claude"

    def __init__(self, model: str, use_cache: bool = True,
                 cache_dir: str | os.PathLike | None = None):
        self.model = model
        self.cache = ResponseCache(cache_dir) if use_cache else None

    # -- what a provider implements ------------------------------------------------------
    @abc.abstractmethod
    async def _send(self, task: Task, message: str, progress: Progress | None) -> Reply:
        """One request; raise PromptTooLong or GenerationError (with a fix) on failure."""

    @abc.abstractmethod
    def _request_line(self, task: Task) -> str:
        """The first line of ``preview``: where the request goes, with which model."""

    @property
    def cache_model(self) -> str:
        """The model as part of the cache key (a local model is not a remote one)."""
        return self.model

    # -- shared --------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> GeneratedCode:
        key = cache_key(request, self.cache_model, PROMPT_VERSION)
        if self.cache and not request.fresh and (hit := self.cache.get(key)):
            return hit
        try:
            reply = await self._ask(ANALYSIS, analysis_message(request), request)
        except PromptTooLong:
            smaller = analysis_message(request, compact_context(request.context))
            try:
                reply = await self._ask(ANALYSIS, smaller, request)
            except PromptTooLong as exc:
                raise GenerationError(
                    f"{exc.problem} A compact data description did not fit either.", exc.fix
                ) from None
        code, explanation = self.parse_analysis(reply)
        answer = GeneratedCode(code=code, explanation=explanation, generator=self.generator_id,
                               model=self.model, usage=reply.usage)
        if self.cache:
            self.cache.put(key, answer)
        return answer

    async def insights(
        self, request: GenerationRequest, metrics: dict[str, Any], output: str
    ) -> tuple[list[str], dict[str, Any]]:
        if request.context.mode == "schema":
            # Metrics and printed output are cell values and aggregates of them.
            return ([f"No written insights: in privacy mode 'schema' the results stay on this "
                     f"machine and are not sent to {self.name}."],
                    {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        reply = await self._ask(INSIGHTS, insights_message(request.question, metrics, output),
                                request)
        statements = [s for s in map(plain_text, self.parse_insights(reply)) if s]
        grounded = ground_insights(statements[:MAX_INSIGHTS], metrics, output, request.question)
        return grounded, reply.usage

    async def fix_cell(self, cell: BrokenCell) -> GeneratedCode:
        # Not cached: a fix answers one traceback, and asking again should be a new try.
        reply = await self._send(FIX, fix_message(cell), None)
        code, explanation = self.parse_analysis(reply)
        return GeneratedCode(code=code, explanation=explanation, generator=self.generator_id,
                             model=self.model, usage=reply.usage)

    def preview(self, request: GenerationRequest) -> str:
        prompt = render(ANALYSIS.system, analysis_message(request))
        tool = json.dumps(ANALYSIS.tool, indent=1)
        return f"{self._request_line(ANALYSIS)}\n\n{prompt}\n=== tool ===\n{tool}\n"

    async def _ask(self, task: Task, message: str, request: GenerationRequest) -> Reply:
        progress = Progress(request.on_progress) if request.on_progress else None
        return await self._send(task, message, progress)

    def parse_analysis(self, reply: Reply) -> tuple[str, str]:
        """``(code, explanation)`` from the tool call, or from a fenced block in plain text.

        Thinking in the text is never read for code: it holds drafts the model rejected.
        """
        self._check_complete(reply)
        answer, data = _answer(reply, ANALYSIS.tool["name"])
        if data is not None:
            code, explanation = data.get("code"), data.get("explanation", "")
            if not isinstance(code, str) or not isinstance(explanation, str):
                raise GenerationError(
                    f"{self.name}'s submit_analysis call did not contain code as text.",
                    "Regenerate; if it happens again, rephrase the question.",
                )
            fenced = _fenced_code(code)
            code = _escaped_once_more(fenced[0] if fenced else code)
        else:
            code, explanation = _fenced_code(answer) or ("", "")
        code = code.strip("\n")
        if data is None and not answer.strip() and reply.text.strip():
            raise GenerationError(
                f"{self.name}'s reply was all thinking, with no answer and no code.",
                "Regenerate; if it happens again, rephrase the question or try another model.",
            )
        if not code.strip():
            raise GenerationError(
                f"{self.name}'s reply contained no code.",
                "Regenerate, or rephrase the question so it asks for a computation on the data.",
            )
        # A reply in the text may have no explanation at all: describe what is known.
        return code + "\n", plain_text(explanation) or f"Code written by {self.describe()}."

    def parse_insights(self, reply: Reply) -> list[str]:
        self._check_complete(reply)
        answer, data = _answer(reply, INSIGHTS.tool["name"])
        if data is not None and isinstance(data.get("insights"), list):
            return [str(item) for item in data["insights"]]
        # Plain-text fallback: one finding per bullet or non-empty line.
        lines = (BULLET.sub("", line).strip() for line in answer.splitlines())
        return [line for line in lines if line]

    def _check_complete(self, reply: Reply) -> None:
        if reply.stop == "cut_off":
            raise GenerationError(
                f"{self.name}'s reply was cut off at the output token limit, so its code is "
                "incomplete.",
                "Regenerate, or split the question into smaller analyses.",
            )
        if reply.stop == "refused":
            raise GenerationError(
                f"{self.name} declined to answer this question.",
                "Rephrase the question as an analysis of the data.",
            )


def server_message(body: object, fallback: str) -> str:
    """The ``error.message`` of an API error body (both APIs use that shape), shortened."""
    body = body if isinstance(body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    message = str(error.get("message") or fallback)
    return message[:MAX_SERVER_MESSAGE]


def answer_and_calls(text: str) -> tuple[str, list[tuple[str, str]]]:
    """A reply's text with its thinking left out: the answer, and the tool calls written in
    a model's own tokens (harmony's, DeepSeek's) as ``(name, arguments)``. Other tool calls
    written as text stay in the answer, for ``_tool_call_in_text``."""
    text = (text or "").replace("\r\n", "\n")
    if HARMONY not in text:
        answer, _, calls = without_thinking(text).partition(DEEPSEEK_CALLS)
        return answer, DEEPSEEK_CALL.findall(calls)
    answer, calls = [], []
    for match in HARMONY_MESSAGE.finditer(text):
        header, content = match.groups()
        channel = HARMONY_CHANNEL.search(header)
        recipient = HARMONY_RECIPIENT.search(header)
        if recipient:
            if recipient.group(1).startswith("functions."):
                calls.append((recipient.group(1).removeprefix("functions."), content))
        elif channel and channel.group(1) in HARMONY_ANSWER:
            answer.append(content)
    return "\n".join(answer), calls


def without_thinking(text: str) -> str:
    """The answer of a reply that may think aloud first: what follows the last
    ``</think>``; nothing when a ``<think>`` is still open (the reply is all thinking)."""
    end = text.rfind(THINK_CLOSE)
    if end >= 0:
        return text[end + len(THINK_CLOSE):]
    return "" if text.lstrip().startswith(THINK_OPEN) else text


def _fenced_code(text: str) -> tuple[str, str] | None:
    """The code block of a Markdown reply and the prose around it.

    The prompt asks for the whole cell in one block. When a reply has several, the
    others are fragments (a line restated, "you could also use ...") or not Python at
    all (``bash`` for a pip install, ``text`` or an unlabelled block showing the
    expected output), so: blocks labelled Python if there are any, else unlabelled
    ones, never other languages; of those the longest, the later one on a tie (a
    corrected version follows the first).
    """
    blocks = list(FENCE.finditer(text))
    labelled = [m for m in blocks if m.group(1).lower() in PYTHON_FENCES]
    candidates = labelled or [m for m in blocks if not m.group(1)]
    if not candidates:
        return None
    best = max(enumerate(candidates), key=lambda pair: (len(pair[1].group(2)), pair[0]))[1]
    prose = FENCE.sub(" ", text)
    return textwrap.dedent(best.group(2)), " ".join(prose.split())


def _escaped_once_more(code: str) -> str:
    """Code some models escape twice in their tool-call JSON arrives as one line with
    literal ``\\n``: it is read once more when only that reading compiles."""
    if "\n" in code.strip() or "\\n" not in code:
        return code
    try:
        compile(code, "<reply>", "exec")
        return code
    except SyntaxError:
        pass
    try:
        unescaped = json.loads(f'"{code}"')
        compile(unescaped, "<reply>", "exec")
    except (ValueError, SyntaxError):
        return code
    return unescaped


def _answer(reply: Reply, name: str) -> tuple[str, dict[str, Any] | None]:
    """The answer of ``reply`` with its thinking left out, and the arguments of its call to
    the tool ``name``: the API's own, or one the model wrote as text."""
    answer, calls = answer_and_calls(reply.text)
    if reply.tool_input is not None:
        return answer, reply.tool_input
    written = next((arguments for called, arguments in calls if called == name), None)
    if written is not None:  # unreadable arguments count as a call without them, as from the API
        return answer, decoded_arguments(written) or {}
    return answer, _tool_call_in_text(answer, name)


def _tool_call_in_text(text: str, name: str) -> dict[str, Any] | None:
    """The arguments of a tool call written as JSON text, e.g. {"name": ..., "arguments": {}}."""
    match = TOOL_CALL_TEXT.match(text or "")
    if not match:
        return None
    try:
        calls = json.loads(match.group(1))
    except ValueError:
        return None
    calls = calls if isinstance(calls, list) else [calls]
    call = next((c for c in calls if isinstance(c, dict) and c.get("name") == name), None)
    if call is None:
        return None
    # As text, since some templates double-encode the arguments.
    return decoded_arguments(call.get("arguments", call.get("parameters")))


def decoded_arguments(arguments: object) -> dict[str, Any] | None:
    """A tool call's arguments, sent as JSON text or as an object; None when unreadable.

    Some models encode the JSON text twice (a string that holds it: ollama#12413,
    quarkus-langchain4j#2642) or write on after it (a stray brace, a sentence:
    SuggestArr#266), so a string is read once more and what follows the value is left.
    """
    for _ in range(2):
        if not isinstance(arguments, str):
            break
        try:
            arguments = JSON.raw_decode(arguments.strip())[0]
        except ValueError:
            return None
    return arguments if isinstance(arguments, dict) else None
