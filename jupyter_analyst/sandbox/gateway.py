"""The gateway backend: sandbox kernels on a cluster, through Jupyter Enterprise Gateway.

The gateway starts each kernel where the cluster puts it (a Docker Swarm service or a
Kubernetes pod, hardened by the operator's kernelspec: see gateway_image/ and
docs/gateway.md); this process talks to it over the gateway's REST API (``/api/kernels``)
and one WebSocket (``/api/kernels/<id>/channels``). Nothing is shared but the kernel
protocol, so frames go to the kernel as Parquet bytes in bounded chunks (the same
fingerprinted files the other backends use, loaded once while analyses keep using them),
and the files an analysis leaves in its outputs/ come back the same way, into the
host's outputs/ directory, where the usual checks read them. Never pickle, either way.

Settings: ``JUPYTER_GATEWAY_URL`` (e.g. http://127.0.0.1:8888) and
``JUPYTER_GATEWAY_AUTH_TOKEN``, read when the sandbox starts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import uuid
from typing import Any
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect

from .. import untrusted
from ..errors import SandboxError
from .kernel import STARTUP_TIMEOUT, Execution, KernelSandbox, OutputCallback
from .limits import SandboxLimits

URL_ENV = "JUPYTER_GATEWAY_URL"
TOKEN_ENV = "JUPYTER_GATEWAY_AUTH_TOKEN"
KERNEL_NAME = "jupyter-analyst-sandbox"  # the kernelspec the gateway serves (gateway_image/)
# Enterprise Gateway refuses kernels for "root"; the kernel runs as the image's user anyway.
KERNEL_USERNAME = "jupyter-analyst"
CHUNK = 1024 * 1024  # bytes of a frame per message (well under the WebSocket's 10 MiB)
MAX_MESSAGE = 16 * 1024 * 1024  # a bigger message from the gateway is refused
REQUEST_TIMEOUT = 30.0
LABEL = "gateway"
GONE_STATES = {"restarting", "dead"}  # the gateway says the kernel process is gone

# Defined once in every kernel: receives a frame's Parquet bytes chunk by chunk, and
# loads it where runtime.bind_frames looks for frames already loaded.
RECEIVER = '''
def _ja_receive(name, part, last):
    import base64
    buffer = _ja_parts.setdefault(name, bytearray())
    buffer += base64.b64decode(part)
    if last:
        import io
        import pandas as pd
        from jupyter_analyst import runtime
        runtime._frames[name] = pd.read_parquet(io.BytesIO(_ja_parts.pop(name)))
_ja_parts = {}
'''
LOADED = ("import json as _ja_json; from jupyter_analyst import runtime as _ja_rt; "
          "print(_ja_json.dumps(sorted(_ja_rt._frames))); del _ja_json, _ja_rt")
# Prints each top-level regular file of outputs/ as JSON lines of base64 chunks.
SEND_OUTPUTS = '''
def _ja_send_outputs(limit, chunk):
    import base64, json, os, stat
    from jupyter_analyst.runtime import OUTPUT_DIR
    sent = 0
    for entry in sorted(os.scandir(OUTPUT_DIR), key=lambda e: e.name):
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or sent + info.st_size > limit:
            print(json.dumps({"name": entry.name, "skipped": True}))
            continue
        with open(entry.path, "rb") as handle:
            data = handle.read(limit - sent + 1)
        sent += len(data)
        for start in range(0, max(len(data), 1), chunk):
            part = base64.b64encode(data[start:start + chunk]).decode()
            print(json.dumps({"name": entry.name, "data": part}), flush=True)
'''
CLEAR_OUTPUTS = ("import shutil as _ja_sh; "
                 "from jupyter_analyst.runtime import OUTPUT_DIR as _ja_o; "
                 "[_ja_sh.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink() "
                 "for p in _ja_o.iterdir()]; del _ja_sh, _ja_o")
FIX = (f"Set {URL_ENV} to the gateway's address (and {TOKEN_ENV} to its token), and check "
       "that the gateway serves the jupyter-analyst-sandbox kernelspec (docs/gateway.md).")


def gateway_settings() -> tuple[str, str]:
    """The gateway's URL and token from the environment; a clear error when unset."""
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if not url:
        raise SandboxError(f"The gateway backend needs {URL_ENV}.", FIX)
    if urlsplit(url).scheme not in ("http", "https"):
        raise SandboxError(f"{URL_ENV}={url!r} is not an http(s) URL.", FIX)
    return url, os.environ.get(TOKEN_ENV, "")


class GatewayKernel:
    """One kernel on the gateway: what KernelSandbox asks of its manager and its client.

    Restarting means a new kernel (a new container on the cluster): the same kernel id
    restarted by the gateway would keep no frames, so it is never trusted to hold them.
    """

    def __init__(self, url: str, token: str, env: dict[str, str]):
        self.url, self.token, self.env = url, token, env
        self.kernel_id: str | None = None
        self.session = uuid.uuid4().hex
        self._socket = None
        self._reader: asyncio.Task | None = None
        self._iopub: asyncio.Queue = asyncio.Queue()
        self._gone = False  # the gateway reported the kernel dead or restarting
        self.http = AsyncHTTPClient()

    # -- REST ---------------------------------------------------------------------------
    async def _request(self, method: str, path: str, body: Any = None,
                       timeout: float = REQUEST_TIMEOUT) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = HTTPRequest(f"{self.url}{path}", method=method, headers=headers,
                              body=None if body is None else json.dumps(body),
                              request_timeout=timeout, allow_nonstandard_methods=True)
        response = await self.http.fetch(request)
        return untrusted.message_part(response.body) if response.body else None

    @property
    def has_kernel(self) -> bool:
        return self.kernel_id is not None

    async def start_kernel(self) -> None:
        try:
            model = await self._request("POST", "/api/kernels",
                                        {"name": KERNEL_NAME, "env": self.env},
                                        timeout=STARTUP_TIMEOUT)
        except HTTPClientError as exc:
            raise SandboxError(f"The gateway at {self.url} did not start a kernel: "
                               f"{_reason(exc)}", FIX) from exc
        except OSError as exc:
            raise SandboxError(f"The gateway at {self.url} cannot be reached ({exc}).",
                               FIX) from exc
        kernel_id = model.get("id") if isinstance(model, dict) else None
        if not isinstance(kernel_id, str) or not kernel_id.replace("-", "").isalnum():
            raise SandboxError(f"The gateway at {self.url} answered without a kernel id.", FIX)
        self.kernel_id = kernel_id
        self._gone = False
        await self._connect()

    async def _connect(self) -> None:
        ws_url = "ws" + self.url[4:] + f"/api/kernels/{self.kernel_id}/channels"
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        self._socket = await websocket_connect(
            HTTPRequest(ws_url, headers=headers, request_timeout=REQUEST_TIMEOUT),
            max_message_size=MAX_MESSAGE)
        self._iopub = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Route iopub messages to the queue; note when the gateway says the kernel is gone."""
        while True:
            raw = await self._socket.read_message()
            if raw is None:  # the connection closed
                self._gone = True
                return
            msg = untrusted.message_part(raw)
            if not isinstance(msg, dict) or msg.get("channel") != "iopub":
                continue
            header, content = msg.get("header"), msg.get("content")
            if not isinstance(header, dict) or not isinstance(content, dict):
                continue
            msg.setdefault("parent_header", {})
            if not isinstance(msg["parent_header"], dict):
                msg["parent_header"] = {}
            msg["msg_type"] = header.get("msg_type", "")
            if msg["msg_type"] == "status" and content.get("execution_state") in GONE_STATES:
                self._gone = True
            await self._iopub.put(msg)

    async def restart_kernel(self, now: bool = True) -> None:
        await self.shutdown_kernel(now=True)
        await self.start_kernel()

    async def interrupt_kernel(self) -> None:
        try:
            await self._request("POST", f"/api/kernels/{self.kernel_id}/interrupt", {})
        except (HTTPClientError, OSError):
            self._gone = True  # nothing left to interrupt: the caller restarts it

    async def shutdown_kernel(self, now: bool = True) -> None:
        self.stop_channels()
        if self.kernel_id is None:
            return
        kernel_id, self.kernel_id = self.kernel_id, None
        try:
            await self._request("DELETE", f"/api/kernels/{kernel_id}")
        except (HTTPClientError, OSError):
            pass  # already gone: the gateway culled it, or the cluster lost it

    async def is_alive(self) -> bool:
        if self.kernel_id is None or self._gone:
            return False
        try:
            model = await self._request("GET", f"/api/kernels/{self.kernel_id}")
        except (HTTPClientError, OSError):
            return False
        return isinstance(model, dict) and model.get("execution_state") not in GONE_STATES

    # -- the kernel protocol ------------------------------------------------------------
    def execute(self, code: str, store_history: bool = False, allow_stdin: bool = False,
                stop_on_error: bool = True, silent: bool = False) -> str:
        msg_id = uuid.uuid4().hex
        message = {
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "",
                       "session": self.session, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": silent, "store_history": store_history,
                        "user_expressions": {}, "allow_stdin": allow_stdin,
                        "stop_on_error": stop_on_error},
        }
        if self._socket is None:
            self._gone = True
        else:
            try:
                self._socket.write_message(json.dumps(message))
            except WebSocketClosedError:
                self._gone = True
        return msg_id

    async def get_iopub_msg(self, timeout: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._iopub.get(), timeout)
        except TimeoutError:
            raise queue.Empty from None

    async def wait_for_ready(self, timeout: float) -> None:
        """Wait until the kernel answers a (silent) request."""
        msg_id = self.execute("", silent=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                msg = await self.get_iopub_msg(min(remaining, 1.0))
            except queue.Empty:
                if self._gone:
                    break
                continue
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"):
                return
        raise SandboxError("The gateway kernel did not become ready.", FIX)

    def stop_channels(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class GatewaySandbox(KernelSandbox):
    """A KernelSandbox whose kernel lives behind Enterprise Gateway."""

    def __init__(self, limits: SandboxLimits | None = None):
        super().__init__(provisioner="", backend=LABEL, label=LABEL, limits=limits)
        self.url, self.token = gateway_settings()
        self.frames_sent = 0  # frames sent to a kernel (a test hook for "data moved once")

    async def _launch(self) -> None:
        limits = self.limits
        # Requests, not guarantees: the operator's launch script caps them (gateway_image/).
        env = {"KERNEL_USERNAME": KERNEL_USERNAME,
               "KERNEL_MEMORY": str(limits.memory), "KERNEL_CPUS": str(limits.cpus),
               "KERNEL_PIDS": str(limits.processes), "KERNEL_FILE_SIZE": str(limits.file_size),
               "KERNEL_OUTPUTS_SIZE": str(limits.outputs_size)}
        kernel = GatewayKernel(self.url, self.token, env)
        self.manager = self.client = kernel
        await kernel.start_kernel()
        await kernel.wait_for_ready(timeout=STARTUP_TIMEOUT)

    async def _bootstrap(self) -> None:
        await super()._bootstrap()
        result = await self._run(RECEIVER, timeout=STARTUP_TIMEOUT, recover=False)
        if result.status != "ok":
            raise SandboxError("The gateway kernel could not set up its data receiver: "
                               f"{(result.error or {}).get('evalue', result.status)}", FIX)

    def isolation_report(self) -> str:
        return f"gateway kernel {self.manager.kernel_id} at {self.url}" if self.manager else ""

    async def _deliver(self, files: dict[str, str]) -> None:
        """Send the frames the kernel has not loaded, each in chunks of ``CHUNK`` bytes."""
        loaded = await self._printed(LOADED)
        have = set(loaded[0]) if loaded and isinstance(loaded[0], list) else set()
        for filename in sorted(set(files.values()) - have):
            data = (self.data_dir / filename).read_bytes()  # shown for this analysis
            starts = range(0, len(data), CHUNK)
            for start in starts:
                part = base64.b64encode(data[start:start + CHUNK]).decode()
                last = start == starts[-1]
                result = await self._run(f"_ja_receive({filename!r}, {part!r}, {last})",
                                         timeout=self.limits.timeout)
                if result.status != "ok":
                    return  # binding reports it (the file is missing in the kernel)
            self.frames_sent += 1

    async def execute(self, code: str, timeout: float | None = None,
                      on_output: OutputCallback | None = None) -> Execution:
        """Run ``code`` with the kernel's outputs/ emptied first and brought back after."""
        await self.start()
        await self._run(CLEAR_OUTPUTS, timeout=self.limits.timeout, recover=False)
        execution = await super().execute(code, timeout, on_output)
        if execution.status in ("ok", "error"):
            await self._fetch_outputs()
        return execution

    async def _fetch_outputs(self) -> None:
        """Write the kernel's outputs/ files into the host's outputs/ (top level only)."""
        limits = self.limits
        chunks = await self._printed(f"{SEND_OUTPUTS}\n_ja_send_outputs({limits.outputs_size}, "
                                     f"{CHUNK})\ndel _ja_send_outputs")
        received: dict[str, bytearray] = {}
        for item in chunks:
            if not isinstance(item, dict) or "data" not in item:
                continue
            name, data = item.get("name"), item.get("data")
            if (not isinstance(name, str) or not isinstance(data, str) or "/" in name
                    or name.startswith(".") or len(received) >= limits.outputs_files):
                continue
            try:
                part = base64.b64decode(data, validate=True)
            except ValueError:  # binascii.Error: not base64, so not a chunk we sent for
                continue
            received.setdefault(name, bytearray()).extend(part)
        for name, data in received.items():
            with open(self.output_dir / name, "xb") as handle:
                handle.write(bytes(data[:limits.outputs_size]))

    async def _printed(self, code: str) -> list[Any]:
        """What ``code`` prints, one JSON value a line; the raw stream, not an output."""
        msg_id = self.client.execute(code, silent=False)
        lines: list[Any] = []
        text = ""
        deadline = asyncio.get_running_loop().time() + self.limits.timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                msg = await self.client.get_iopub_msg(timeout=1.0)
            except queue.Empty:
                if not await self.is_alive():
                    break
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            content = msg["content"]
            if msg["msg_type"] == "stream" and content.get("name") == "stdout":
                text += str(content.get("text", ""))
                if len(text) > 2 * self.limits.outputs_size:
                    break
            elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
                break
        for line in text.splitlines():
            value = untrusted.message_part(line)
            lines.append(value)
        return lines


def _reason(exc: HTTPClientError) -> str:
    body = exc.response.body if exc.response is not None else b""
    model = untrusted.message_part(body) if body else None
    reason = model.get("reason") if isinstance(model, dict) else None
    return untrusted.text(str(reason or exc), untrusted.MAX_ERROR_TEXT)
