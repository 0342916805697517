"""A built-in domain running inside the hub, reached without serialising anything.

The hub's peer still speaks JSON-RPC messages (dicts) to it, so supervision, cancellation,
progress and metrics are the same as for a child process; but the messages are answered by
calling the kit `Domain` directly instead of going through an SDK session, which would validate
and rebuild every message as pydantic models on both sides. A call costs tens of microseconds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import LATEST_LEGACY
from aggregator.upstreams.channel import ChannelClosed, MessageHandler, PushChannel
from servers.kit import Domain, ToolContext
from servers.kit.context import CALLER_META_KEY, REQUEST_ID_META_KEY
from servers.kit.domain import VERSION

_log = logging.getLogger("toolmux.upstream")


class DirectToolContext(ToolContext):
    """A ToolContext whose progress and log messages go straight back to the hub's peer."""

    channel: DirectChannel | None = None
    progress_token: Any = None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.channel is None or self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.channel.deliver(jsonrpc.notification("notifications/progress", params))

    async def log(self, level: str, message: str, **data: Any) -> None:
        logging.getLogger(f"toolmux.{self.tool}").log(logging.INFO if level == "info" else logging.WARNING, message)
        if self.channel is not None:
            payload: Any = {"message": message, **data} if data else message
            await self.channel.deliver(
                jsonrpc.notification("notifications/message", {"level": level, "logger": self.tool, "data": payload})
            )


class DirectChannel(PushChannel):
    def __init__(self, name: str, domain: Domain, tg: TaskGroup) -> None:
        self.name = name
        self.domain = domain
        self._tg = tg
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[dict[str, Any]](1000)
        # A call is a loop task, cancelled with task.cancel(): the task group's start_soon plus a
        # cancel scope per call cost ~8% of an in-process call (cProfile, bench/official_clients.py).
        self._running: dict[Any, asyncio.Task[None]] = {}
        self._handler: MessageHandler | None = None
        self.closed = False

    def attach(self, handler: MessageHandler) -> None:
        self._handler = handler

    async def deliver(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if self._handler is not None:
            self._handler(message)
        else:
            await self._inbox_send.send(message)

    async def receive(self) -> dict[str, Any]:
        try:
            return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise ChannelClosed(f"in-process server {self.name!r} stopped") from None

    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        if self.closed:
            raise ChannelClosed(f"in-process server {self.name!r} stopped")
        method = message.get("method")
        if method is None:
            return  # a response to a request this server never sends
        params = jsonrpc.obj(message.get("params"))
        if "id" not in message:
            if method == "notifications/cancelled":
                task = self._running.get(params.get("requestId"))
                if task is not None:
                    task.cancel()
            return
        request_id = message["id"]
        if method == "tools/call":
            task = asyncio.get_running_loop().create_task(self._call(request_id, params))
            self._running[request_id] = task
            task.add_done_callback(partial(self._call_done, request_id))
            return
        await self.deliver(self._answer(request_id, method, params))

    def _answer(self, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        domain = self.domain
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": params.get("protocolVersion", LATEST_LEGACY),
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": f"toolmux-{domain.name}", "version": VERSION},
            }
            if domain.instructions:
                result["instructions"] = domain.instructions
            return jsonrpc.result(request_id, result)
        if method == "tools/list":
            return jsonrpc.result(request_id, {"tools": domain.list_tools()})
        if method == "ping":
            return jsonrpc.result(request_id, {})
        # server/discover included: a direct domain is served in the session era, with no envelope.
        return jsonrpc.error(request_id, jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _call(self, request_id: Any, params: dict[str, Any]) -> None:
        meta = jsonrpc.obj(params.get("_meta"))
        name = str(params.get("name"))
        ctx = DirectToolContext(
            tool=name,
            request_id=str(meta.get(REQUEST_ID_META_KEY) or uuid.uuid4().hex[:16]),
            caller=meta.get(CALLER_META_KEY) if isinstance(meta.get(CALLER_META_KEY), str) else None,
            hub=self.domain.hub,
            meta=meta,
        )
        ctx.channel = self
        ctx.progress_token = meta.get("progressToken")
        arguments = params.get("arguments")
        result = await self.domain.call(name, arguments if isinstance(arguments, dict) else None, ctx)
        await self.deliver(jsonrpc.result(request_id, result))

    def _call_done(self, request_id: Any, task: asyncio.Task[None]) -> None:
        if self._running.get(request_id) is task:
            del self._running[request_id]
        # Domain.call answers every failure itself; anything escaping it is a bug to log, and the
        # caller's timeout still ends its wait.
        if not task.cancelled() and task.exception() is not None:
            _log.error("in-process server %r: a call failed", self.name, exc_info=task.exception())

    async def aclose(self) -> None:
        self.closed = True
        for task in list(self._running.values()):
            task.cancel()
        await self._inbox_send.aclose()

    async def wait_calls(self) -> None:
        """Let cancelled calls finish their clean-up before the domain's lifespan ends."""
        running = list(self._running.values())
        if running:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(running)

    def describe(self) -> str:
        return "in-process"


@asynccontextmanager
async def open_direct(name: str, domain: Domain) -> AsyncIterator[DirectChannel]:
    """Run the domain's lifespan (background tasks such as TTL sweeps) for as long as the channel lives."""
    lifespan = domain.lifespan_context()
    async with lifespan, anyio.create_task_group() as tg:
        channel = DirectChannel(name, domain, tg)
        try:
            yield channel
        finally:
            await channel.aclose()
            await channel.wait_calls()
            tg.cancel_scope.cancel()
