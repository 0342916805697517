"""A child process speaking newline-delimited JSON-RPC on stdin/stdout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from aggregator.protocol import jsonrpc
from aggregator.upstreams.channel import ChannelClosed

_log = logging.getLogger("toolmux.upstream")

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# Environment a child inherits from the hub; secrets go in the server's `env`.
INHERITED_ENV = (
    "HOME",
    "LANG",
    "LC_ALL",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "NODE_PATH",
    "XDG_RUNTIME_DIR",
    "SYSTEMROOT",
)


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(extra)
    return env


class StdioChannel:
    """Owns one child process; `receive()` ends with ChannelClosed naming the exit status."""

    def __init__(self, process: Process, name: str, command: str) -> None:
        self.process = process
        self.name = name
        self._command = command
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._write_lock = anyio.Lock(fast_acquire=True)
        # anyio's send yields to the loop once more after every write (a shielded checkpoint): an
        # extra loop round per message, ~4% of a call through the hub. When its asyncio writer is
        # there, write to it directly; a full pipe still waits in drain().
        writer = getattr(process.stdin, "_stream", None)
        self._writer = writer if isinstance(writer, asyncio.StreamWriter) else None
        # The child's last stderr line: why it exited, more often than not.
        self.last_stderr: str | None = None

    @classmethod
    async def spawn(
        cls, name: str, command: str, args: list[str], env: Mapping[str, str], cwd: str | None
    ) -> StdioChannel:
        try:
            process = await anyio.open_process(
                [command, *args],
                env=child_environment(env),
                cwd=cwd,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill reaches its children too
            )
        except OSError as exc:
            raise ChannelClosed(f"cannot start {command!r}: {exc.strerror or exc}") from None
        channel = cls(process, name, command)
        return channel

    async def pump_stderr(self) -> None:
        """Forward the child's stderr lines to the hub log (children log there by convention)."""
        if self.process.stderr is None:
            return
        stream = BufferedByteReceiveStream(self.process.stderr)
        logger = logging.getLogger(f"toolmux.upstream.{self.name}")
        try:
            while True:
                line = await stream.receive_until(b"\n", 1 << 20)
                if line:
                    text = line.decode("utf-8", "replace")
                    self.last_stderr = text[:500]
                    logger.info("%s", text)
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.DelimiterNotFound,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ):
            return

    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        data = jsonrpc.dumps(message) + b"\n"
        writer = self._writer
        if writer is not None:
            try:
                # One write() call is atomic on the loop; drain() waits only while the pipe is full,
                # and concurrent drains are allowed (3.10+), so no lock is needed here.
                writer.write(data)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError, RuntimeError, OSError):
                raise ChannelClosed(await self._exit_reason()) from None
            return
        try:
            async with self._write_lock:
                await self._stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise ChannelClosed(await self._exit_reason()) from None

    async def receive(self) -> dict[str, Any]:
        while True:
            try:
                line = await self._stdout.receive_until(b"\n", MAX_MESSAGE_BYTES)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
                raise ChannelClosed(await self._exit_reason()) from None
            except anyio.DelimiterNotFound:
                raise ChannelClosed(f"{self.name}: a message exceeded {MAX_MESSAGE_BYTES} bytes") from None
            line = line.strip()
            if not line:
                continue
            try:
                message = jsonrpc.loads(line)
            except ValueError:
                _log.warning("%s: ignoring a stdout line that is not JSON: %.200r", self.name, line)
                continue
            if isinstance(message, dict):
                return message
            _log.warning("%s: ignoring a non-object JSON message", self.name)

    async def _exit_reason(self) -> str:
        with anyio.move_on_after(2):
            code = await self.process.wait()
            if code < 0:
                return f"process {self._command!r} was killed by signal {signal.Signals(-code).name}"
            # Give the stderr pump a moment to read the child's last words.
            await anyio.sleep(0.05)
            said = f": {self.last_stderr}" if self.last_stderr else ""
            return f"process {self._command!r} exited with status {code}{said}"
        return f"process {self._command!r} closed its stdout"

    async def aclose(self) -> None:
        """Close stdin (the polite shutdown), then escalate to SIGTERM and SIGKILL."""
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await self._stdin.aclose()
            if self.process.returncode is None:
                with anyio.move_on_after(2):
                    await self.process.wait()
            for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, sig)
                with anyio.move_on_after(grace):
                    await self.process.wait()
            await self.process.aclose()

    def describe(self) -> str:
        return f"stdio: {self._command} (pid {self.process.pid})"
