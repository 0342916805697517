"""Run a child process the way workspaces need: own process group, rlimits, capped output, no leftovers.

The child starts a new session (so its process group holds it and everything it forks, unless
something calls setsid itself) with resource limits applied between fork and exec. When the
leader exits, when the timeout passes, or when the caller is cancelled, the whole group is
killed with SIGKILL and the leader reaped. What left the group (`setsid`) is the caller's to
end through `after_exit` (the shell's sandbox modes track the whole tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import anyio

PRLIMIT = shutil.which("prlimit")
# Seconds to let output drain after the group was killed: a process that left the group
# (setsid) may still hold the pipe open, and must not hold the caller too.
DRAIN_GRACE = 2.0


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    address_space: int
    file_size: int
    nproc: int
    open_files: int

    def as_dict(self) -> dict[str, int]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "address_space_bytes": self.address_space,
            "file_size_bytes": self.file_size,
            "nproc": self.nproc,
            "open_files": self.open_files,
        }

    def _values(self) -> list[tuple[int, str, int]]:
        """(resource, prlimit option, value) each, never above the hard limit this process has."""
        wanted = [
            (resource.RLIMIT_CPU, "cpu", self.cpu_seconds),
            (resource.RLIMIT_AS, "as", self.address_space),
            (resource.RLIMIT_FSIZE, "fsize", self.file_size),
            (resource.RLIMIT_NPROC, "nproc", self.nproc),
            (resource.RLIMIT_NOFILE, "nofile", self.open_files),
            (resource.RLIMIT_CORE, "core", 0),
        ]
        out = []
        for which, option, value in wanted:
            _, hard = resource.getrlimit(which)
            out.append((which, option, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        return out

    def wrapper(self) -> list[str] | None:
        """`prlimit --cpu=N ... --` to put before a command (util-linux), or None when not installed.

        Preferred over `preexec`: a preexec function makes Python fork the whole interpreter
        (~25 ms here) where it can otherwise use vfork (~2 ms)."""
        if PRLIMIT is None:
            return None
        return [PRLIMIT, *(f"--{option}={value}" for _, option, value in self._values()), "--"]

    def preexec(self) -> Callable[[], None]:
        """A function run in the child before exec that lowers its limits."""
        values = [(which, value) for which, _, value in self._values()]

        def apply() -> None:
            for which, value in values:
                resource.setrlimit(which, (value, value))

        return apply


class CappedBuffer:
    """Keeps at most `cap` bytes of a stream: its head and, when `tail` is set, its tail too."""

    def __init__(self, cap: int, *, tail: bool = True) -> None:
        self.cap = cap
        self.keep_tail = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        head_cap = self.cap // 2 if self.keep_tail else self.cap
        room = head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.keep_tail:
            self.tail += data
            tail_cap = self.cap - head_cap
            if len(self.tail) > tail_cap:
                del self.tail[: len(self.tail) - tail_cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        if not self.truncated:
            return head + self.tail.decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        if not self.keep_tail:
            return head + f"\n[... {omitted} more bytes not shown ...]"
        return head + f"\n[... {omitted} bytes omitted ...]\n" + self.tail.decode("utf-8", "replace")

    def bytes(self) -> bytes:
        return bytes(self.head + self.tail)


@dataclass
class ProcessResult:
    exit_code: int | None
    stdout: CappedBuffer
    stderr: CappedBuffer | None
    timed_out: bool
    duration_s: float
    pid: int

    @property
    def signal(self) -> int | None:
        return -self.exit_code if self.exit_code is not None and self.exit_code < 0 else None


@dataclass
class ProcessSpec:
    argv: list[str]
    cwd: str
    env: Mapping[str, str]
    timeout: float
    output_cap: int
    limits: Limits | None = None
    merge_stderr: bool = True
    keep_tail: bool = True
    stderr_cap: int = 16 * 1024
    on_start: Callable[[int], Awaitable[None]] | None = field(default=None, repr=False)
    on_output: Callable[[bytes], None] | None = field(default=None, repr=False)
    # Called whenever the leader's group is killed (leader exit, timeout, cancellation): kills what
    # escaped the group (a `setsid` child), so its open pipe does not hold the drain either.
    after_exit: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _pump(
    stream: asyncio.StreamReader | None, sink: CappedBuffer | None, tap: Callable[[bytes], None] | None = None
) -> None:
    if stream is None or sink is None:
        return
    while piece := await stream.read(65536):
        sink.add(piece)
        if tap is not None:
            tap(piece)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Signals the leader's exit as it happens. (`Process.wait()` returns only once every pipe
    closed too, which a background child holding stdout would delay indefinitely.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def run_process(spec: ProcessSpec) -> ProcessResult:
    """Run `spec.argv`; the result even on timeout. Cancellation kills the group, then propagates."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    # asyncio, not anyio.open_process: for the exit event (_Protocol) and, without prlimit, preexec_fn.
    argv, preexec = spec.argv, None
    if spec.limits is not None:
        wrapper = spec.limits.wrapper()
        argv, preexec = ([*wrapper, *argv], None) if wrapper else (argv, spec.limits.preexec())
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(loop),
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if spec.merge_stderr else subprocess.PIPE,
        cwd=spec.cwd,
        env=dict(spec.env),
        start_new_session=True,
        preexec_fn=preexec,
    )
    pid = transport.get_pid()
    pgid = pid  # a new session: the leader's pid is the group id
    stdout = CappedBuffer(spec.output_cap, tail=spec.keep_tail)
    stderr = None if spec.merge_stderr else CappedBuffer(spec.stderr_cap)
    timed_out = False
    swept = False
    try:
        if spec.on_start is not None:
            await spec.on_start(pid)
        with anyio.move_on_after(spec.timeout) as deadline:
            async with anyio.create_task_group() as tg:
                drained = anyio.Event()

                async def pump_all() -> None:
                    async with anyio.create_task_group() as pumps:
                        pumps.start_soon(_pump, protocol.stdout, stdout, spec.on_output)
                        pumps.start_soon(_pump, protocol.stderr, stderr)
                    drained.set()

                tg.start_soon(pump_all)
                await protocol.exited.wait()
                # The leader is done: whatever it left running in its group goes with it.
                kill_group(pgid)
                if spec.after_exit is not None:
                    await spec.after_exit()
                    swept = True
                with anyio.move_on_after(DRAIN_GRACE):
                    await drained.wait()
                tg.cancel_scope.cancel()
        timed_out = deadline.cancelled_caught
    finally:
        with anyio.CancelScope(shield=True):
            kill_group(pgid)
            await protocol.exited.wait()
            if spec.after_exit is not None and not swept:
                await spec.after_exit()
            transport.close()
    return ProcessResult(transport.get_returncode(), stdout, stderr, timed_out, time.perf_counter() - started, pid)
