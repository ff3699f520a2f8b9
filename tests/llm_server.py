"""A local stand-in for the Anthropic Messages API, for driving the real SDK in tests.

It listens on 127.0.0.1, answers ``POST /v1/messages`` with scripted replies in the
real response shape (message JSON, error bodies with the real error types and
status codes, ``retry-after`` and ``request-id`` headers) and records every request
it receives, so tests can assert on exactly what left the machine. Like the real
API it rejects requests without a key (``x-api-key`` or ``authorization: Bearer``, which
this SDK sends) or version header, without ``model``,
``max_tokens`` or ``messages``, and (as current models do) a forced tool choice or
a non-default temperature.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_ids = itertools.count(1)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (for timeouts)


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


class MessagesServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []  # {"headers": {...}, "body": {...}}
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

    def start(self) -> MessagesServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        problem = _invalid(body, headers)
        if problem:
            return error(*problem)
        with self._lock:
            if not self.replies:
                return error(400, "test server: no scripted reply left")
            reply = self.replies.pop(0)
        if reply.status == 200:
            reply.body = {**reply.body, "model": body["model"]}
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.split("?")[0] != "/v1/messages":
                    return self._send(error(404, f"Not found: {self.path}"))
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._send(error(400, "There was an issue with your request body."))
                with server._lock:
                    server.requests.append({"headers": headers, "body": body, "raw": raw})
                self._send(server._next(body, headers))

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

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


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


@pytest.fixture
def llm_server(monkeypatch, tmp_path):
    """A running server, with the SDK pointed at it and the response cache in ``tmp_path``."""
    server = MessagesServer().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.setenv("JUPYTER_ANALYST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield server
    server.stop()
