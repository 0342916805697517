"""Runs: one at a time per workspace, sync or in the background, cancellable, results kept a while.

A run claims its workspace (in memory, and with an flock on the workspace's lock file so two
server processes sharing a data directory cannot both run there); a second claim is refused at
once with code "busy" (HTTP 409), never queued. A sync run lives in its caller's task: when the
caller goes away (MCP cancellation, HTTP disconnect) the run is cancelled, which kills its
processes. Async and fire-and-forget runs live in the server's task group. Finished async
results are kept until read (then `read_result_ttl`) or until `async_result_ttl` passes unread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc

from servers.kit import ToolError
from servers.workspaces.files import iso
from servers.workspaces.layout import Workspace

_log = logging.getLogger("toolmux.workspaces")

Mode = Literal["sync", "async", "fire_and_forget"]
Status = Literal["running", "completed", "error", "cancelled", "timeout"]


@dataclass(frozen=True)
class RunEvent:
    kind: str  # run_started | assistant | tool_call | tool_result | process_started | run_finished
    run_id: str
    workspace: str
    data: dict[str, Any]


Listener = Callable[[RunEvent], None]
Progress = Callable[[RunEvent], Awaitable[None]]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, usage: dict[str, Any] | None) -> None:
        if not isinstance(usage, dict):
            return
        prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += int(usage.get("total_tokens") or prompt + completion)

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class RunState:
    """What a run has done so far; an agent updates it as it goes, so a cancelled run still reports."""

    num_turns: int = 0
    usage: Usage = field(default_factory=Usage)
    total_cost: float = 0.0
    turns: list[dict[str, Any]] = field(default_factory=list)
    result: str = ""
    is_error: bool = False
    structured: Any = None
    error_code: str | None = None


@dataclass
class Run:
    id: str
    workspace: Workspace
    agent: str
    model: str | None
    mode: Mode
    session_id: str
    verbose: bool
    timeout: float
    listeners: list[Listener] = field(default_factory=list)
    progress: Progress | None = None
    state: RunState = field(default_factory=RunState)
    status: Status = "running"
    started_at: float = field(default_factory=time.time)
    started_perf: float = field(default_factory=time.perf_counter)
    finished_perf: float | None = None
    finished_at: float | None = None
    finished_mono: float | None = None
    read_at: float | None = None
    cancel_reason: str | None = None
    processes: set[int] = field(default_factory=set)
    finalizers: list[Callable[[Run], None]] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    _lock_fd: int | None = None

    def notify(self, kind: str, **data: Any) -> None:
        event = RunEvent(kind, self.id, self.workspace.name, data)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("run event listener failed")

    async def emit(self, kind: str, **data: Any) -> None:
        """Tell listeners, and the caller of a sync run (as MCP progress)."""
        self.notify(kind, **data)
        if self.progress is not None:
            await self.progress(RunEvent(kind, self.id, self.workspace.name, data))

    @property
    def duration_ms(self) -> int:
        end = self.finished_perf if self.finished_perf is not None else time.perf_counter()
        return int((end - self.started_perf) * 1000)

    def summary(self) -> dict[str, Any]:
        """The run as `status` lists it."""
        return {
            "run_id": self.id,
            "workspace": self.workspace.name,
            "agent": self.agent,
            "model": self.model,
            "mode": self.mode,
            "status": self.status,
            "session_id": self.session_id,
            "started_at": iso(self.started_at),
            "num_turns": self.state.num_turns,
        }

    def result(self) -> dict[str, Any]:
        """The run's result in the shape every face returns."""
        state = self.state
        out: dict[str, Any] = {
            "run_id": self.id,
            "workspace": self.workspace.name,
            "agent": self.agent,
            "model": self.model,
            "status": self.status,
            "result": state.result,
            "is_error": state.is_error,
            "num_turns": state.num_turns,
            "duration_ms": self.duration_ms,
            "usage": state.usage.as_dict(),
            "total_cost": round(state.total_cost, 10),
            "session_id": self.session_id,
            "started_at": iso(self.started_at),
        }
        if self.finished_at is not None:
            out["finished_at"] = iso(self.finished_at)
        if state.structured is not None:
            out["structured_output"] = state.structured
        if state.error_code:
            out["error_code"] = state.error_code
        if self.verbose:
            out["turns"] = state.turns
        return out


Body = Callable[[Run], Awaitable[None]]


class RunManager:
    def __init__(
        self, *, async_result_ttl: float, read_result_ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.async_result_ttl = async_result_ttl
        self.read_result_ttl = read_result_ttl
        self.active: dict[str, Run] = {}  # workspace name -> its running run
        self.runs: dict[str, Run] = {}  # run id -> run (running, or finished and kept for pickup)
        self.listeners: list[Listener] = []
        self._tg: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The server's lifetime: background runs live here and are cancelled when it ends."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield
            finally:
                self._tg = None
                for run in list(self.active.values()):
                    run.cancel_reason = run.cancel_reason or "the server is shutting down"
                    run.scope.cancel()
                tg.cancel_scope.cancel()

    # --- claiming ----------------------------------------------------------------------------------
    def claim(
        self, workspace: Workspace, *, agent: str, model: str | None, mode: Mode, session_id: str, verbose: bool,
        timeout: float,
    ) -> Run:  # fmt: skip
        """Take the workspace for a new run, or refuse at once (code "busy")."""
        self.sweep()
        if mode != "sync" and self._tg is None:
            raise ToolError(
                "background runs need the server running (its lifespan); use a sync run", code="unavailable"
            )
        current = self.active.get(workspace.name)
        if current is not None:
            raise self.busy_error(workspace.name, current.id, current.started_at)
        lock_fd = self._flock(workspace)
        run = Run(
            id="run_" + uuid.uuid4().hex[:20],
            workspace=workspace,
            agent=agent,
            model=model,
            mode=mode,
            session_id=session_id,
            verbose=verbose,
            timeout=timeout,
            listeners=list(self.listeners),
            _lock_fd=lock_fd,
        )
        run.scope = anyio.CancelScope(deadline=anyio.current_time() + timeout)
        self.active[workspace.name] = run
        self.runs[run.id] = run
        return run

    @staticmethod
    def busy_error(workspace: str, run_id: str | None, started_at: float | None) -> ToolError:
        since = f", running for {time.time() - started_at:.0f} s" if started_at else ""
        return ToolError(
            f"workspace {workspace!r} is busy with run {run_id or '(in another server process)'}{since}; "
            "one run at a time per workspace: wait for it (run_result) or stop it (run_cancel)",
            code="busy",
            field="workspace",
            retryable=True,
            data={"workspace": workspace, "run_id": run_id},
        )

    def _flock(self, workspace: Workspace) -> int:
        fd = os.open(workspace.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.busy_error(workspace.name, None, None) from None
        return fd

    def _release(self, run: Run) -> None:
        if self.active.get(run.workspace.name) is run:
            del self.active[run.workspace.name]
        if run._lock_fd is not None:
            os.close(run._lock_fd)  # closing drops the flock
            run._lock_fd = None

    # --- running -----------------------------------------------------------------------------------
    async def execute(self, run: Run, body: Body) -> None:
        """Run `body` under the run's cancel scope and deadline; settle status, record, release."""
        interrupted = True
        try:
            await run.emit("run_started", agent=run.agent, model=run.model, mode=run.mode, session_id=run.session_id)
            with run.scope:
                await body(run)
            interrupted = run.scope.cancelled_caught
        except ToolError as exc:
            interrupted = False
            run.status = "error"
            run.state.is_error = True
            run.state.result = exc.message
            run.state.error_code = exc.code
            if run.state.num_turns == 0 and run.mode == "sync":
                raise  # nothing happened yet: the caller gets a plain tool error (bad model alias...)
        except anyio.get_cancelled_exc_class():
            run.cancel_reason = run.cancel_reason or "the caller went away (disconnected or cancelled the call)"
            raise
        except Exception:
            interrupted = False
            _log.exception("run %s failed", run.id)
            run.status = "error"
            run.state.is_error = True
            run.state.result = f"internal error in run {run.id}"
            run.state.error_code = "internal"
        finally:
            if interrupted:
                run.status = "cancelled" if run.cancel_reason else "timeout"
                run.state.is_error = True
                run.state.result = (
                    f"cancelled: {run.cancel_reason}"
                    if run.cancel_reason
                    else f"the run did not finish within {run.timeout:g} s and was stopped"
                )
                run.state.error_code = run.status
            elif run.status == "running":
                run.status = "error" if run.state.is_error else "completed"
            self._finish(run)

    def _finish(self, run: Run) -> None:
        run.finished_perf = time.perf_counter()
        run.finished_at = time.time()
        run.finished_mono = self.clock()
        for finalize in run.finalizers:
            try:
                finalize(run)
            except Exception:
                _log.exception("finishing run %s failed", run.id)
        self._release(run)
        if run.mode == "fire_and_forget":
            self.runs.pop(run.id, None)  # nobody will ask; the transcript keeps the outcome
        elif run.mode == "sync":
            run.read_at = self.clock()
        run.notify("run_finished", status=run.status, is_error=run.state.is_error)
        run.done.set()

    def start_background(self, run: Run, body: Body) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._background, run, body)

    async def _background(self, run: Run, body: Body) -> None:
        try:
            await self.execute(run, body)
        except anyio.get_cancelled_exc_class():
            raise
        except ToolError:
            pass  # already recorded in the run's result

    # --- finding, waiting, cancelling -----------------------------------------------------------------
    def find(self, run_id: str | None = None, workspace: str | None = None) -> Run:
        self.sweep()
        if run_id:
            run = self.runs.get(run_id)
            if run is None:
                raise ToolError(
                    f"no run {run_id!r}: unknown, a fire-and-forget run that finished, or its result expired",
                    code="not_found",
                    field="run_id",
                )
            return run
        if workspace:
            run = self.active.get(workspace)
            if run is not None:
                return run
            finished = [r for r in self.runs.values() if r.workspace.name == workspace]
            if finished:
                return max(finished, key=lambda r: r.started_at)
            raise ToolError(f"no run in workspace {workspace!r} is active or kept", code="not_found", field="workspace")
        raise ToolError("give run_id or workspace", field="run_id")

    async def wait(self, run: Run, seconds: float) -> dict[str, Any]:
        if seconds > 0 and not run.done.is_set():
            with anyio.move_on_after(seconds):
                await run.done.wait()
        if run.done.is_set() and run.read_at is None:
            run.read_at = self.clock()
        return run.result()

    async def cancel(self, run: Run, reason: str, *, wait: float = 15.0) -> bool:
        """Stop a run and wait (bounded) until its processes are gone; False when it had finished."""
        if run.done.is_set():
            return False
        run.cancel_reason = reason
        run.scope.cancel()
        with anyio.move_on_after(wait):
            await run.done.wait()
        return True

    def sweep(self) -> None:
        """Forget finished results nobody will read any more."""
        now = self.clock()
        for run_id, run in list(self.runs.items()):
            if run.finished_mono is None:
                continue
            if run.read_at is not None:
                if now - run.read_at >= self.read_result_ttl:
                    del self.runs[run_id]
            elif now - run.finished_mono >= self.async_result_ttl:
                del self.runs[run_id]
