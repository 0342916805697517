"""The hub as an MCP server over its own stdin/stdout (how Claude Desktop launches servers).

The process owner already holds the config and its secrets, so the stdio face acts as the
master key unless `--key` narrows it to a named key's scope.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import anyio

from aggregator.front.core import McpCore
from aggregator.front.envelope import modern_session
from aggregator.front.session import FrontSession
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import LATEST_LEGACY, modern_meta
from aggregator.protocol.jsonrpc import RpcError

_log = logging.getLogger("toolmux.stdio")
MAX_LINE = 64 * 1024 * 1024


class StdioFace:
    def __init__(self, core: McpCore, principal: Principal) -> None:
        self.core = core
        self.principal = principal
        self._write_lock = anyio.Lock(fast_acquire=True)
        self._out: Any = None
        self.session = FrontSession(principal=principal, protocol_version=LATEST_LEGACY)
        self._modern_in_flight: dict[Any, anyio.CancelScope] = {}

    async def write(self, message: dict[str, Any]) -> None:
        data = jsonrpc.dumps(message) + b"\n"
        async with self._write_lock:
            await self._out.write(data)

    async def serve(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve until stdin closes. `stdin`/`stdout` are binary file objects (default: the process's)."""
        source = await open_line_reader(stdin or sys.stdin.buffer)
        self._out = await open_writer(stdout or sys.stdout.buffer)
        session = self.session
        session.unsolicited = self.write
        self.core.front.sessions.add(session)
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    try:
                        line = await source.readline()
                    except ValueError:
                        await self.write(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "message too large"))
                        break
                    if not line:
                        break
                    if line.strip():
                        await self._on_line(line, tg)
                tg.cancel_scope.cancel()
        finally:
            self.core.front.sessions.discard(session)
            session.close()

    async def _on_line(self, line: bytes, tg: Any) -> None:
        try:
            message = jsonrpc.loads(line)
        except ValueError:
            await self.write(jsonrpc.error(None, jsonrpc.PARSE_ERROR, "Parse error: invalid JSON"))
            return
        problem = jsonrpc.check_message(message)
        if problem is not None:
            request_id = (
                message.get("id") if isinstance(message, dict) and jsonrpc.valid_id(message.get("id")) else None
            )
            await self.write(jsonrpc.error(request_id, jsonrpc.INVALID_REQUEST, f"Invalid request: {problem}"))
            return
        if jsonrpc.is_response(message):
            self.session.deliver_response(message)
            return
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        if message["method"] == "notifications/cancelled" and params is not None:
            scope = self._modern_in_flight.get(params.get("requestId"))
            if scope is not None:
                scope.cancel()
        if modern_meta(params) is not None or message["method"] == "server/discover":
            tg.start_soon(self._serve_modern, message, params)
        elif "id" in message:
            tg.start_soon(self._serve, self.session, message)
        else:
            await self.core.handle(self.session, message, self.write)

    async def _serve(self, session: FrontSession, message: dict[str, Any]) -> None:
        response = await self.core.handle(session, message, self.write)
        if response is not None:
            await self.write(response)

    async def _serve_modern(self, message: dict[str, Any], params: dict[str, Any] | None) -> None:
        request_id = message.get("id")
        try:
            session = modern_session(self.principal, params)
        except RpcError as exc:
            if request_id is not None:
                await self.write(jsonrpc.error_from(request_id, exc))
            return
        if request_id is None:
            await self.core.handle(session, message, self.write)
            return
        with anyio.CancelScope() as scope:
            self._modern_in_flight[request_id] = scope
            try:
                await self._serve(session, message)
            finally:
                self._modern_in_flight.pop(request_id, None)


class _ThreadLines:
    """Line reading in a worker thread, for inputs the event loop cannot watch (regular files)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    async def readline(self) -> bytes:
        line: bytes = await anyio.to_thread.run_sync(self._source.readline, MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ValueError("line too long")
        return line


class _ThreadWriter:
    def __init__(self, target: Any) -> None:
        self._target = target

    async def write(self, data: bytes) -> None:
        def put() -> None:
            self._target.write(data)
            self._target.flush()

        # A thread, so a client that stops reading stalls only this write, not the event loop.
        await anyio.to_thread.run_sync(put)


class _PipeWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()


async def open_line_reader(source: Any) -> Any:
    """Read lines from stdin on the event loop itself when it is a pipe or socket (no thread hop)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), source)
    except (ValueError, OSError, AttributeError):
        return _ThreadLines(source)
    return reader


async def open_writer(target: Any) -> Any:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, target)
    except (ValueError, OSError, AttributeError):
        return _ThreadWriter(target)
    return _PipeWriter(asyncio.StreamWriter(transport, protocol, None, loop))
