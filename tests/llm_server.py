"""Local stand-ins for the Anthropic Messages API and the OpenAI Chat Completions API.

They drive the real SDKs in tests. Each listens on 127.0.0.1, answers with scripted
replies in the real response shape (JSON bodies, error bodies with the real error
types and status codes, ``retry-after`` headers, and server-sent events when the
request says ``stream: true``) and records every request it receives, so tests can
assert on exactly what left the machine.

``MessagesServer``, like the real API, rejects requests without a key (``x-api-key`` or
``authorization: Bearer``, which this SDK sends) or version header, without ``model``,
``max_tokens`` or ``messages``, and (as current models do) a forced tool choice or a
non-default temperature. ``ChatServer`` checks the bearer key, answers 404 for a model
it does not serve (in Ollama's words with ``ollama=True``), can refuse ``tools`` as
Ollama does for models without tool support, and serves ``GET /v1/models`` (and
Ollama's ``GET /api/tags``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jupyter_analyst import PythonAnalysisAgent

_ids = itertools.count(1)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (for timeouts)
    chunk_delay: float = 0.0  # seconds between streamed events (to watch progress)
    # How a Chat Completions server shapes its stream: "openai", "vllm", "llamacpp",
    # "ollama" or "no-index" (Gemini's endpoint, mistral.rs); see ChatServer.events.
    # "harmony": a server that does not parse gpt-oss's output sends it raw as the content,
    # streamed or not (see as_harmony).
    dialect: str = "openai"


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn",
            input_tokens: int = 1_000, output_tokens: int = 200) -> Reply:
    """A successful Messages API reply; ``model`` is filled in from the request."""
    return Reply(200, {
        "id": f"msg_test{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": None,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    })


def tool_call(name: str, tool_input: dict[str, Any], thinking: str | None = None,
              **usage: int) -> Reply:
    """A reply that calls a tool, optionally after a thinking block (as adaptive thinking does)."""
    content = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": "c2lnbmF0dXJl"})
    content.append({"type": "tool_use", "id": f"toolu_test{next(_ids):06d}", "name": name,
                    "input": tool_input})
    return message(content, stop_reason="tool_use", **usage)


def analysis(code: str, explanation: str = "Computes the answer.", **kwargs: Any) -> Reply:
    return tool_call("submit_analysis", {"code": code, "explanation": explanation}, **kwargs)


def insights(*statements: str, **usage: int) -> Reply:
    return tool_call("submit_insights", {"insights": list(statements)}, **usage)


def text(body: str, **usage: int) -> Reply:
    return message([{"type": "text", "text": body}], **usage)


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error(status: int, msg: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": msg},
        "request_id": f"req_test{next(_ids):06d}",
    }, headers or {})


STREAM_PIECE = 24  # characters per streamed delta


def pieces(text: str) -> list[str]:
    return [text[i:i + STREAM_PIECE] for i in range(0, len(text), STREAM_PIECE)] or [""]


class StandIn:
    """Scripted replies and recorded requests behind a threaded HTTP server on 127.0.0.1."""

    post_path = ""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []  # {"headers": {...}, "body": {...}, "raw"}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    def raw_bodies(self) -> list[str]:
        return [r["raw"] for r in self.requests]

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- what an API implements ---------------------------------------------------------
    def error(self, status: int, msg: str) -> Reply:
        raise NotImplementedError

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        """The reply to a request the API refuses before looking at the script."""
        return None

    def events(self, reply: Reply) -> list[str]:
        """A successful reply as server-sent event frames."""
        raise NotImplementedError

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        return self.error(404, f"Not found: {path}")

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        refused = self.invalid(body, headers)
        if refused:
            return refused
        with self._lock:
            if not self.replies:
                return self.error(400, "test server: no scripted reply left")
            reply = self.replies.pop(0)
        if reply.status == 200:
            reply = replace(reply, body={**reply.body, "model": body["model"]})
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(server.get(self.path.split("?")[0], headers))

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.split("?")[0] != server.post_path:
                    return self._send(server.error(404, f"Not found: {self.path}"))
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._send(server.error(400, "The request body is not JSON."))
                with server._lock:
                    server.requests.append({"headers": headers, "body": body, "raw": raw})
                reply = server._next(body, headers)
                if reply.status == 200 and body.get("stream"):
                    return self._stream(reply)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                time.sleep(reply.delay)
                data = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", reply.body.get("request_id", "req_test"))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _stream(self, reply: Reply) -> None:
                time.sleep(reply.delay)
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
                    for frame in server.events(reply):
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                        time.sleep(reply.chunk_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class MessagesServer(StandIn):
    post_path = "/v1/messages"
    models = ("claude-sonnet-5-5", "claude-opus-5-5")

    def error(self, status: int, msg: str) -> Reply:
        return error(status, msg)

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        problem = _invalid(body, headers)
        return error(*problem) if problem else None

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        if path != "/v1/models":
            return error(404, f"Not found: {path}")
        if not headers.get("x-api-key"):
            return error(401, "x-api-key header is required")
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
                for m in self.models]
        return Reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"],
                           "last_id": data[-1]["id"]})

    def events(self, reply: Reply) -> list[str]:
        """The Messages API's event sequence for a finished message."""
        body = reply.body
        usage = body["usage"]
        frames = [_sse({"type": "message_start", "message": {
            **body, "content": [], "stop_reason": None,
            "usage": {**usage, "output_tokens": 1}}}, named=True)]
        for index, block in enumerate(body["content"]):
            kind = block["type"]
            empty = {"text": {"type": "text", "text": ""},
                     "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                     "tool_use": {**block, "input": {}}}[kind]
            frames.append(_sse({"type": "content_block_start", "index": index,
                                "content_block": empty}, named=True))
            if kind == "text":
                deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
            elif kind == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": p}
                          for p in pieces(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                deltas = [{"type": "input_json_delta", "partial_json": p}
                          for p in pieces(json.dumps(block["input"]))]
            frames += [_sse({"type": "content_block_delta", "index": index, "delta": d},
                            named=True) for d in deltas]
            frames.append(_sse({"type": "content_block_stop", "index": index}, named=True))
        frames.append(_sse({"type": "message_delta",
                            "delta": {"stop_reason": body["stop_reason"],
                                      "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}, named=True))
        frames.append(_sse({"type": "message_stop"}, named=True))
        return frames


def _sse(data: dict[str, Any], named: bool = False) -> str:
    event = f"event: {data['type']}\n" if named else ""
    return f"{event}data: {json.dumps(data)}\n\n"


def _invalid(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str] | None:
    """The checks the real API makes that matter for a client, as (status, message)."""
    if not (headers.get("x-api-key") or headers.get("authorization", "").startswith("Bearer ")):
        return 401, "x-api-key or authorization header is required"
    if not headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return 400, f"{name}: Field required"
    if not body["messages"]:
        return 400, "messages: at least one message is required"
    choice = body.get("tool_choice") or {}
    if choice.get("type") in ("tool", "any"):
        return 400, f"tool_choice: type \"{choice['type']}\" is not supported for this model"
    if "temperature" in body:
        return 400, "temperature: only the default value is supported for this model"
    return None


def _point_at(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JUPYTER_ANALYST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# A module's shared server, with the SDK pointed at it (``server``), cleared for each test
# (``llm``), and a local-backend agent that uses it (``agent``).
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MessagesServer().start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTHROPIC_BASE_URL", server.url)
        patch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
        patch.setenv("JUPYTER_ANALYST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield server
    server.stop()


@pytest.fixture
def llm(server):
    server.requests.clear()
    server.replies.clear()
    yield server
    assert not server.replies, "scripted replies left unused"


@pytest.fixture(scope="module")
def agent(server):
    agent = PythonAnalysisAgent(backend="local", use_cache=False)
    yield agent
    agent.cleanup()


@pytest.fixture
def llm_server(monkeypatch, tmp_path):
    """A running server, with the SDK pointed at it and the response cache in ``tmp_path``."""
    server = MessagesServer().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    _point_at(monkeypatch, tmp_path)
    yield server
    server.stop()


# -- the Chat Completions API (OpenAI, Ollama's /v1, vLLM, LM Studio, llama.cpp) -----------
def completion(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
               finish_reason: str = "stop", prompt_tokens: int = 900,
               completion_tokens: int = 150, reasoning: str | None = None,
               reasoning_field: str = "reasoning_content") -> Reply:
    """A successful Chat Completions reply; ``model`` is filled in from the request.

    ``reasoning`` is a reasoning model's thinking in the field its server uses:
    ``reasoning_content`` (DeepSeek, llama.cpp, LM Studio) or ``reasoning`` (vLLM, Ollama).
    """
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message[reasoning_field] = reasoning
    return Reply(200, {
        "id": f"chatcmpl-test{next(_ids):06d}",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": None,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })


def chat_tool(name: str, arguments: dict[str, Any] | str, finish_reason: str = "tool_calls",
              content: str | None = None, **kwargs: Any) -> Reply:
    """A reply calling function ``name``; a str is sent as the raw (maybe broken) arguments.

    Older Ollama versions end a tool call with ``finish_reason`` "stop"; thinking models put
    their ``<think>`` text in ``content`` before the call.
    """
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": f"call_test{next(_ids):06d}", "type": "function",
            "function": {"name": name, "arguments": raw}}
    return completion(content, [call], finish_reason=finish_reason, **kwargs)


def chat_analysis(code: str, explanation: str = "Computes the answer.", **kwargs: Any) -> Reply:
    return chat_tool("submit_analysis", {"code": code, "explanation": explanation}, **kwargs)


def chat_insights(*statements: str, **usage: int) -> Reply:
    return chat_tool("submit_insights", {"insights": list(statements)}, **usage)


def chat_text(body: str, finish_reason: str = "stop", **kwargs: Any) -> Reply:
    return completion(body, finish_reason=finish_reason, **kwargs)


def streamed_as(dialect: str, reply: Reply) -> Reply:
    """``reply``, streamed the way ``dialect``'s server streams it."""
    return replace(reply, dialect=dialect)


def as_harmony(reply: Reply) -> Reply:
    """``reply`` as gpt-oss writes it, sent by a server without a harmony parser (an older
    vLLM, llama.cpp without --jinja, a raw completion proxy): the thinking in the analysis
    channel, the content in the final one and each tool call in a commentary message to
    ``functions.<name>``, all as the text of the content (openai/harmony docs/format.md).
    The content goes before a call as a preamble: a call ends the reply."""
    choice = reply.body["choices"][0]
    message = choice["message"]
    thinking = message.get("reasoning_content") or message.get("reasoning")
    calls = message.get("tool_calls") or ()
    parts = [f"<|channel|>analysis<|message|>{thinking}<|end|>"] if thinking else []
    if message["content"]:
        channel, end = ("commentary", "<|end|>") if calls else ("final", "<|return|>")
        parts.append(f"<|start|>assistant<|channel|>{channel}<|message|>{message['content']}"
                     + end)
    for call in calls:
        function = call["function"]
        parts.append(f"<|start|>assistant<|channel|>commentary to=functions.{function['name']} "
                     f"<|constrain|>json<|message|>{function['arguments']}<|call|>")
    raw = {"role": "assistant", "content": "".join(parts), "refusal": None}
    body = {**reply.body, "choices": [{**choice, "message": raw, "finish_reason": "stop"}]}
    return replace(reply, body=body, dialect="harmony")


def chat_error(status: int, msg: str, code: str | None = None,
               headers: dict[str, str] | None = None, kind: str | None = None) -> Reply:
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return Reply(status, {"error": {"message": msg, "type": kind, "param": None, "code": code}},
                 headers or {})


class ChatServer(StandIn):
    """The Chat Completions API; ``ollama=True`` speaks like Ollama (errors, /api/tags)."""

    post_path = "/v1/chat/completions"

    def __init__(self, key: str | None = "sk-test-openai", models: tuple[str, ...] = (),
                 ollama: bool = False, rejects_tools: bool = False,
                 stream_usage: bool = True) -> None:
        super().__init__()
        self.key = key  # None: any key, as local servers do
        self.models = models  # empty: every model is served
        self.ollama = ollama
        self.rejects_tools = rejects_tools
        self.stream_usage = stream_usage  # False: ignores include_usage (older Ollama)

    def error(self, status: int, msg: str) -> Reply:
        return chat_error(status, msg)

    def invalid(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        given = headers.get("authorization", "").removeprefix("Bearer ")
        if self.key is not None and given != self.key:
            return chat_error(401, f"Incorrect API key provided: {given[:6]}***.",
                              "invalid_api_key")
        for name in ("model", "messages"):
            if not body.get(name):
                return chat_error(400, f"Missing required parameter: '{name}'.")
        model = body["model"]
        if self.models and model not in self.models:
            if self.ollama:
                return chat_error(404, f'model "{model}" not found, try pulling it first',
                                  kind="api_error")
            return chat_error(404, f"The model `{model}` does not exist or you do not have "
                                   "access to it.", "model_not_found")
        if self.rejects_tools and body.get("tools"):
            return chat_error(400, f"registry.ollama.ai/library/{model} does not support tools",
                              kind="api_error")
        return None

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        if path == "/api/tags" and self.ollama:
            return Reply(200, {"models": [{"name": m, "model": m, "size": 4_700_000_000}
                                          for m in self.models]})
        if path == "/v1/models":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            if self.key is not None and given != self.key:
                return chat_error(401, "Incorrect API key provided.", "invalid_api_key")
            return Reply(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                for m in self.models]})
        return chat_error(404, f"Not found: {path}")

    def events(self, reply: Reply) -> list[str]:
        """The chunks of ``reply`` as its ``dialect``'s server streams them, asked for with
        ``stream_options={"include_usage": True}``:

        - openai: a role chunk; content in pieces; per tool call a first delta with
          ``index``, ``id``, name and empty arguments, then the arguments in pieces with
          ``index`` only; a finish chunk; usage in a last chunk without choices.
        - vllm: the same, with no ``arguments`` key in a call's first delta, and thinking
          in ``reasoning`` deltas.
        - llamacpp: a role chunk with ``content: null``; thinking in ``reasoning_content``;
          usage (and llama.cpp's ``timings``) in the finish chunk itself.
        - ollama: no role chunk, ``role`` in every delta, and each tool call whole in one
          chunk; the finish chunk, then usage.
        - no-index: each tool call whole in one delta without ``index`` (Gemini's
          OpenAI endpoint, mistral.rs).
        - harmony: no role chunk, the raw text in content deltas, usage in a last chunk.
        """
        body, style = reply.body, reply.dialect
        choice = body["choices"][0]
        message = choice["message"]
        usage = body["usage"] if self.stream_usage else None

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            one = {"index": 0, "delta": delta, "finish_reason": finish}
            data = {**{k: body[k] for k in ("id", "created", "model")},
                    "object": "chat.completion.chunk", "choices": [one], **extra}
            if style == "openai":  # OpenAI sends these keys as null on every chunk
                one["logprobs"] = None
                data.setdefault("usage", None)
            return _sse(data)

        said = {"role": "assistant"} if style == "ollama" else {}
        frames = []
        if style in ("openai", "vllm"):
            frames.append(chunk({"role": "assistant", "content": ""}))
        elif style == "llamacpp":
            frames.append(chunk({"role": "assistant", "content": None}))
        for name in ("reasoning_content", "reasoning"):
            frames += [chunk({**said, name: p}) for p in pieces(message.get(name) or "")
                       if message.get(name)]
        frames += [chunk({**said, "content": p}) for p in pieces(message["content"] or "")
                   if message["content"]]
        for index, call in enumerate(message.get("tool_calls") or []):
            function = call["function"]
            if style in ("ollama", "no-index"):
                whole = {"id": call["id"], "index": index, "type": "function",
                         "function": function}
                if style == "no-index":
                    del whole["index"]
                frames.append(chunk({**said, "content": "", "tool_calls": [whole]}))
                continue
            first = {"index": index, "id": call["id"], "type": "function",
                     "function": {"name": function["name"]}}
            if style != "vllm":
                first["function"]["arguments"] = ""
            frames.append(chunk({"tool_calls": [first]}))
            frames += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                       for p in pieces(function["arguments"])]
        if style == "llamacpp":
            timings = {"prompt_n": 900, "prompt_ms": 203.4, "predicted_n": 150,
                       "predicted_ms": 933.6}
            frames.append(chunk({}, choice["finish_reason"],
                                **({"usage": usage, "timings": timings} if usage else {})))
        else:
            frames.append(chunk({**said, "content": ""} if said else {}, choice["finish_reason"]))
            if usage:
                frames.append(_sse({**{k: body[k] for k in ("id", "created", "model")},
                                    "object": "chat.completion.chunk", "choices": [],
                                    "usage": usage}))
        frames.append("data: [DONE]\n\n")
        return frames


@pytest.fixture
def chat_server(monkeypatch, tmp_path):
    """An OpenAI-style server, with OPENAI_BASE_URL and OPENAI_API_KEY pointing at it."""
    server = ChatServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    _point_at(monkeypatch, tmp_path)
    yield server
    server.stop()


@pytest.fixture
def ollama_server(monkeypatch, tmp_path):
    """An Ollama-style server with two pulled models, OLLAMA_HOST pointing at it."""
    server = ChatServer(key=None, models=("qwen2.5-coder:7b", "llama3.2:3b"), ollama=True)
    server.start()
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    _point_at(monkeypatch, tmp_path)
    yield server
    server.stop()
