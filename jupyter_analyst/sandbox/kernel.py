"""A Jupyter kernel in a sandbox, driven over jupyter_client's ipc transport.

Backend-neutral: the local and Docker backends differ only in the kernel
provisioner named in the in-memory kernel spec. The kernel is started once and
kept warm, and checked clean before each analysis (restarted when an earlier one
changed it); frames are written once (see ``datastore``) and stay loaded while
analyses keep using them.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from jupyter_client.manager import AsyncKernelManager

from .. import layout, safefs, untrusted
from ..errors import ExecutionTimeout, SandboxError
from .datastore import write_frame
from .kernelspec import KERNEL_NAME, SandboxSpecManager, kernelspec
from .limits import SandboxLimits

STARTUP_TIMEOUT = 120.0
INTERRUPT_GRACE = 5.0
OUTPUTS_CHECK_INTERVAL = 1.0  # seconds between two looks at what outputs/ holds
OUTPUTS_OVER = "OutputsQuotaExceeded"  # the ename of an analysis stopped for its outputs/
KERNEL_MEMORY = 400 * 1024**2  # about what a kernel with its libraries loaded needs
# Run once in each new kernel: headless plots, helpers, copy-on-write frames.
BOOTSTRAP = ("from jupyter_analyst.runtime import setup_kernel as _ja_setup; _ja_setup(); "
             "del _ja_setup")

OutputCallback = Callable[[dict[str, Any]], None]


class ExecutionStatus(StrEnum):
    """How an execute request ended (a ``str``: ``status == "ok"`` and ``f"{status}"`` read
    as before)."""

    OK = "ok"  # the kernel went idle with no error (where every execution starts)
    ERROR = "error"  # the code raised: the one outcome a fix of the code can help
    TIMEOUT = "timeout"  # it ran out of time and was interrupted (or the kernel restarted)
    DIED = "died"  # the kernel stopped under it, most often at the memory limit


OK, ERROR, TIMEOUT, DIED = ExecutionStatus
# Where each status may go while the messages come in; anything else is a bug here.
TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    OK: frozenset({ERROR, TIMEOUT, DIED}),
    ERROR: frozenset({TIMEOUT, DIED}),  # the error came, then the kernel hung or died
    TIMEOUT: frozenset(),
    DIED: frozenset(),
}


@dataclass
class Execution:
    """What one execute request produced, as nbformat-style output dicts (untrusted)."""

    status: ExecutionStatus = OK
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None  # {"ename", "evalue", "traceback"}
    duration: float = 0.0
    restarted: bool = False  # the kernel had to be restarted; frames are reloaded next time

    @property
    def repairable(self) -> bool:
        """The code raised: a fix of the code can help (a timeout or a death may need less
        work, not other code)."""
        return self.status == ERROR

    def end(self, status: ExecutionStatus) -> None:
        """Move to ``status``, checked against ``TRANSITIONS``."""
        if status != self.status and status not in TRANSITIONS[self.status]:
            raise RuntimeError(f"execution: no transition from {self.status.value} to "
                               f"{status.value}")
        self.status = status


class KernelSandbox:
    """One warm kernel behind a kernel provisioner, with a private sandbox directory."""

    def __init__(
        self,
        provisioner: str,
        backend: str,
        label: str,
        limits: SandboxLimits | None = None,
        provisioner_config: dict[str, Any] | None = None,
    ):
        self.provisioner = provisioner
        self.backend = backend
        self.label = label
        self.limits = limits or SandboxLimits.from_env()
        self.provisioner_config = provisioner_config or {}
        self.root: Path | None = None
        self._layout: layout.SandboxLayout | None = None
        self.manager: AsyncKernelManager | None = None
        self.client = None
        self.frames_written = 0  # Parquet files written (a test/bench hook for "data moved once")
        self.restarts = 0
        self._restart_reason: str | None = None  # why the next analysis needs a new kernel

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self.client is not None

    @property
    def data_dir(self) -> Path:
        return self._require_layout().data

    @property
    def store_dir(self) -> Path:
        """Every frame written this session; not mounted in the sandbox."""
        return self._require_layout().store

    @property
    def output_dir(self) -> Path:
        return self._require_layout().outputs

    def _require_layout(self) -> layout.SandboxLayout:
        if self._layout is None:
            raise SandboxError("The sandbox is not started.", "Call start() first.")
        return self._layout

    async def start(self) -> None:
        if self.started:
            return
        self.root = Path(tempfile.mkdtemp(prefix="jupyter-analyst-"))
        # Removed at interpreter exit too, if nobody calls shutdown().
        self._remove_root = weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)
        self._layout = layout.create(self.root)
        try:
            await self._launch()
            await self._bootstrap()
        except SandboxError:
            await self.shutdown()
            raise
        except Exception as exc:
            await self.shutdown()
            raise SandboxError(
                f"The {self.label} sandbox kernel did not start: {exc}",
                f"{self._memory_hint()}Run `jupyter-analyst doctor` to see what is missing.",
            ) from exc

    async def _launch(self) -> None:
        """Start the kernel behind this sandbox's provisioner and connect a client to it."""
        dirs = self._require_layout()
        spec = kernelspec([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          self.provisioner, self._provisioner_config())
        self.manager = AsyncKernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=SandboxSpecManager(spec=spec),
            transport="ipc",
            ip=str(dirs.kernel_socket),
            connection_file=str(dirs.connection_file),
        )
        await self.manager.start_kernel()
        # Messages are untrusted: parsed with bounded depth and numbers, never raising.
        self.manager.session.unpack = untrusted.message_part
        self.client = self.manager.client()
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)

    def _memory_hint(self) -> str:
        """For a kernel that died starting: the usual cause, when the limit makes it likely."""
        if self.limits.memory >= KERNEL_MEMORY:
            return ""
        return (f"The memory limit ({_size(self.limits.memory)}) may be too small for the "
                f"kernel, which needs about {_size(KERNEL_MEMORY)} with pandas and matplotlib "
                "loaded: raise SANDBOX_MEMORY_LIMIT. ")

    def _provisioner_config(self) -> dict[str, Any]:
        limits = self.limits
        config = {
            "sandbox_dir": str(self.root),
            "memory": limits.memory,
            "cpus": limits.cpus,
            "cpu_seconds": limits.cpu_seconds,
            "processes": limits.processes,
            "file_size": limits.file_size,
            "outputs_size": limits.outputs_size,
            "outputs_files": limits.outputs_files,
        }
        config.update(self.provisioner_config)
        return config

    async def _bootstrap(self) -> None:
        result = await self._run(BOOTSTRAP, timeout=STARTUP_TIMEOUT, recover=False)
        if _out_of_memory(result):
            raise SandboxError(
                f"The sandbox kernel ran out of memory loading its libraries (limit "
                f"{_size(self.limits.memory)}).",
                f"Raise SANDBOX_MEMORY_LIMIT (the kernel needs about {_size(KERNEL_MEMORY)}).")
        if result.status != OK:
            detail = (result.error or {}).get("evalue", result.status)
            raise SandboxError(
                f"The sandbox kernel started but could not load its helpers: {detail}",
                "Reinstall jupyter-analyst (or rebuild the sandbox image with "
                "`jupyter-analyst build-image`).",
            )

    async def restart(self) -> None:
        await self.manager.restart_kernel(now=True)
        await self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        self.restarts += 1
        await self._bootstrap()

    async def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.manager is not None:
            try:
                if self.manager.has_kernel:
                    await self.manager.shutdown_kernel(now=True)
            finally:
                self.manager = None
        if self.root is not None:
            self._remove_root()
            self.root = self._layout = None

    async def is_alive(self) -> bool:
        return self.manager is not None and await self.manager.is_alive()

    def isolation_report(self) -> str:
        """What the provisioner recorded about isolation (e.g. 'network: isolated')."""
        # The kernel can write to run/, so read the file as untrusted: no links, no FIFOs.
        report = self._require_layout().isolation_report
        raw = safefs.read_small(report.parent, report.name, untrusted.MAX_ISOLATION_BYTES)
        text = raw.decode("utf-8", "replace") if raw else ""
        return untrusted.text(text, untrusted.MAX_ISOLATION_BYTES).strip()

    # -- data ----------------------------------------------------------------------------
    async def bind_frames(self, frames: dict[str, pd.DataFrame]) -> list[str]:
        """Bind each frame under its name, on a kernel as clean as a new one.

        Frames are written once (to store/, which the kernel never sees); data/ then
        holds this analysis's files only. A kernel that an earlier analysis
        left changed, or that ran out of memory, is restarted first, and so is one
        that fails to load the frames for lack of memory (then loading is retried
        once). Returns warnings for the user, one line per restart among them.
        """
        await self.start()
        self._show_only(set())  # every file back in store/, where the datastore looks
        warnings: list[str] = []
        files = {}
        for name, frame in frames.items():
            filename, frame_warnings, written = write_frame(frame, name, self.store_dir)
            self.frames_written += written
            warnings += frame_warnings
            files[name] = filename
        self._show_only(set(files.values()))
        if not await self.is_alive():  # killed between analyses
            self._restart_reason = "it had stopped"
        if self._restart_reason:
            warnings.append(await self._restart_for(self._restart_reason))
        code = (
            "from jupyter_analyst.runtime import bind_frames as _ja_bind\n"
            f"_ja_bind(globals(), {files!r})\n"
            "del _ja_bind"
        )
        for attempt in (1, 2):
            await self._deliver(files)
            result = await self._run(code, timeout=self.limits.timeout)
            if result.status == OK:
                return warnings
            error = result.error or {}
            if error.get("ename") == "StateChanged" and attempt == 1:
                changed = _first_line(error.get("evalue", ""))
                reason = f"the previous analysis left changed: {changed}"
            elif result.status == DIED and attempt == 1:
                reason = "it stopped loading the data, most often for lack of memory"
            elif _out_of_memory(result) and attempt == 1:
                reason = "it ran out of memory loading the data"
            else:
                break
            warnings.append(await self._restart_for(reason, restarted=result.restarted))
        if _out_of_memory(result):
            raise SandboxError(
                f"Could not load the data into the sandbox: the kernel ran out of memory "
                f"(limit {_size(self.limits.memory)}).",
                "Raise the limit (SANDBOX_MEMORY_LIMIT=4g, or SandboxLimits(memory=...)) or "
                "pass a smaller frame (a sample, fewer columns).")
        detail = (result.error or {}).get("evalue", result.status)
        raise SandboxError(f"Could not load the data into the sandbox: {detail}",
                           "Check that the frame converts to Parquet (df.to_parquet()).")

    async def _deliver(self, files: dict[str, str]) -> None:
        """Get the stored files the kernel lacks to it; here the kernel reads data/ itself.
        (A backend without a shared file system sends them over the kernel protocol.)"""

    async def _restart_for(self, reason: str, restarted: bool = False) -> str:
        """Restart the kernel (unless that just happened) and say why, in one line."""
        if not restarted:
            await self.restart()
        self._restart_reason = None
        return f"The sandbox kernel was restarted before this analysis ({reason}); " \
               "the data was loaded again."

    def _show_only(self, filenames: set[str]) -> None:
        """Make data/ hold this analysis's stored files and nothing else (moved, not
        linked: a stored file keeps one link, which is how the datastore knows it)."""
        for entry in self.data_dir.iterdir():
            os.replace(entry, self.store_dir / entry.name)
        for name in filenames:
            os.replace(self.store_dir / name, self.data_dir / name)

    def clear_outputs(self) -> None:
        """Empty the outputs directory before an analysis (links removed, never followed)."""
        safefs.clear_dir(self.output_dir)

    # -- execution ------------------------------------------------------------------------
    async def execute(
        self, code: str, timeout: float | None = None, on_output: OutputCallback | None = None
    ) -> Execution:
        """Run ``code``; a timeout interrupts (then restarts) the kernel, a death restarts it."""
        await self.start()
        execution = await self._run(code, timeout or self.limits.timeout, on_output)
        if _out_of_memory(execution) and not execution.restarted:
            # Memory the failed code held (or fragmented) would fail the next analysis.
            self._restart_reason = "the previous analysis ran out of memory"
        return execution

    async def _run(
        self, code: str, timeout: float, on_output: OutputCallback | None = None,
        recover: bool = True,
    ) -> Execution:
        """Run ``code``; with ``recover``, a kernel that dies or hangs is restarted."""
        msg_id = self.client.execute(code, store_history=False, allow_stdin=False,
                                     stop_on_error=True)
        try:
            return await self._collect(msg_id, timeout, on_output, recover)
        except asyncio.CancelledError:
            # The caller gave up (Ctrl-C, Cancel): stop the code too, or it keeps the
            # kernel busy and the next analysis waits behind it.
            await self._stop_runaway(msg_id)
            raise

    async def _collect(
        self, msg_id: str, timeout: float, on_output: OutputCallback | None, recover: bool
    ) -> Execution:
        """Read the iopub messages of ``msg_id`` until the kernel is idle, dead or too slow."""
        started = time.monotonic()
        deadline = started + timeout
        next_check = started + OUTPUTS_CHECK_INTERVAL
        execution = Execution()
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                execution.end(TIMEOUT)
                if recover:
                    execution.restarted = await self._stop_runaway(msg_id)
                break
            if recover and now >= next_check:  # an analysis (not the kernel's own set-up)
                next_check = now + OUTPUTS_CHECK_INTERVAL
                if over := self._outputs_over():
                    await self._stop_for_outputs(execution, over)
                    break
            try:
                msg = await self.client.get_iopub_msg(timeout=min(1.0, remaining))
            except queue.Empty:
                if not await self.is_alive():
                    execution.end(DIED)
                    if recover:
                        await self.restart()
                        execution.restarted = True
                    break
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            output = _as_output(kind, content)
            if output is None:
                continue
            if kind == "error":
                execution.end(ERROR)
                execution.error = {k: output[k] for k in ("ename", "evalue", "traceback")}
            execution.outputs.append(output)
            if on_output is not None:
                on_output(output)
        execution.duration = time.monotonic() - started
        return execution

    def _outputs_over(self) -> str | None:
        """What outputs/ holds, in words, when it is more than an analysis may leave.

        With a tmpfs (a root host) the engine enforces the total; without one this look,
        every second while code runs, is what keeps outputs/ from filling the host's disk.
        """
        limits = self.limits
        try:
            held = safefs.usage(self.output_dir, limits.outputs_size, limits.outputs_files)
        except OSError:  # outputs/ itself replaced: collecting reports it
            return None
        if not held.over(limits.outputs_size, limits.outputs_files):
            return None
        if held.too_deep:
            return f"directories nested more than {safefs.MAX_CLEAR_DEPTH} deep"
        if held.entries > limits.outputs_files:
            return f"more than {limits.outputs_files:,} files"
        return f"more than {_size(limits.outputs_size)}"

    async def _stop_for_outputs(self, execution: Execution, over: str) -> None:
        """Stop code whose outputs/ went over the quota: a restart ends every process it
        started (not just the cell), and outputs/ is emptied so the host's disk is freed."""
        execution.end(ERROR)
        execution.error = {
            "ename": OUTPUTS_OVER,
            "evalue": f"the code wrote {over} to outputs/, over what one analysis may leave "
                      f"({_size(self.limits.outputs_size)} and {self.limits.outputs_files:,} "
                      "files); it was stopped and its files removed",
            "traceback": [],
        }
        self.clear_outputs()  # before the restart too: its set-up must not find them full
        await self.restart()
        execution.restarted = True
        self.clear_outputs()

    async def _stop_runaway(self, msg_id: str) -> bool:
        """Interrupt the running cell; restart the kernel if it does not come back.

        Returns whether it was restarted.
        """
        await self.manager.interrupt_kernel()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while time.monotonic() < deadline:
            try:
                msg = await self.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"):
                return False
        await self.restart()
        return True


def _as_output(kind: str, content: Any) -> dict[str, Any] | None:
    """An iopub message as an nbformat output dict (fields type-checked, texts capped), or None."""
    return untrusted.kernel_output(kind, content)


def _out_of_memory(execution: Execution) -> bool:
    """The code ran out of memory: Python's MemoryError, a C++ std::bad_alloc (pyarrow,
    numpy), or a kernel that died (most often the memory limit's doing)."""
    error = execution.error or {}
    return (execution.status == DIED or error.get("ename") == "MemoryError"
            or "bad_alloc" in str(error.get("evalue", "")))


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else "its state"


def _size(n: int) -> str:
    return f"{n / 1024**3:g} GiB" if n >= 1024**3 else f"{n / 1024**2:g} MiB"


def timeout_error(timeout: float) -> ExecutionTimeout:
    return ExecutionTimeout(
        f"The analysis ran longer than {timeout:g} s and was stopped.",
        "Ask for less work (sample the data, fewer plots) or raise the limit with "
        "--timeout SECONDS or %config Analyze.timeout = SECONDS.",
    )
