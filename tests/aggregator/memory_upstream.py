"""An MCP server in memory, for the unit tests of the peer, dispatch and the front core.

`MemoryChannel` is a real `Channel` whose far end is the test: what the hub sends arrives on
`to_server`, and `push()` delivers the server's messages. `MemoryServer` plays a small MCP server
on such a channel (session era), with a few tools that each do one thing a test needs: answer,
stream progress, wait until cancelled, fail, stamp its identity. Everything it saw is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc
from aggregator.upstreams.channel import ChannelClosed
from aggregator.upstreams.upstream import ChannelOpener

SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

TOOLS: list[dict[str, Any]] = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {
        "name": "add",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
    {"name": "count", "inputSchema": {"type": "object", "properties": {"to": {"type": "integer"}}}},
    {"name": "hang", "inputSchema": {"type": "object"}},
    {"name": "fail", "inputSchema": {"type": "object"}},
    {"name": "die", "inputSchema": {"type": "object"}},
    {"name": "ask", "inputSchema": {"type": "object"}},
]


class MemoryChannel:
    def __init__(self) -> None:
        self._to_server_in, self.to_server = anyio.create_memory_object_stream[dict[str, Any]](100)
        self._to_hub_in, self._to_hub = anyio.create_memory_object_stream[dict[str, Any]](100)
        self.reason = "memory channel closed"
        self.sent_headers: list[dict[str, str] | None] = []

    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        self.sent_headers.append(headers)
        try:
            await self._to_server_in.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ChannelClosed(self.reason) from None

    async def receive(self) -> dict[str, Any]:
        try:
            return await self._to_hub.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise ChannelClosed(self.reason) from None

    async def push(self, message: dict[str, Any]) -> None:
        """Deliver a message from the server to the hub."""
        await self._to_hub_in.send(message)

    def close(self, reason: str) -> None:
        """The server goes away: the hub reads the end, with `reason`."""
        self.reason = reason
        self._to_hub_in.close()

    async def aclose(self) -> None:
        self._to_hub_in.close()
        self._to_server_in.close()

    def describe(self) -> str:
        return "memory"


@dataclass
class MemoryServer:
    channel: MemoryChannel = field(default_factory=MemoryChannel)
    seen: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[Any] = field(default_factory=list)
    cancelled_event: anyio.Event = field(default_factory=anyio.Event)
    call_started: anyio.Event = field(default_factory=anyio.Event)
    client_answers: list[dict[str, Any]] = field(default_factory=list)
    _waiting: dict[Any, anyio.Event] = field(default_factory=dict)

    def calls(self) -> list[dict[str, Any]]:
        return [m for m in self.seen if m.get("method") == "tools/call"]

    async def serve(self) -> None:
        async with anyio.create_task_group() as tg:
            async for message in self.channel.to_server:
                self.seen.append(message)
                tg.start_soon(self._handle, message, tg)

    async def _handle(self, message: dict[str, Any], tg: TaskGroup) -> None:
        method = message.get("method")
        params = jsonrpc.obj(message.get("params"))
        if method is None:
            self.client_answers.append(message)
            waiting = self._waiting.pop(message.get("id"), None)
            if waiting is not None:
                waiting.set()
            return
        if method == "notifications/cancelled":
            self.cancelled.append(params.get("requestId"))
            self.cancelled_event.set()
            return
        if "id" not in message:
            return
        rid = message["id"]
        if method == "initialize":
            await self._reply(
                rid,
                {
                    "protocolVersion": params.get("protocolVersion"),
                    "capabilities": {"tools": {"listChanged": True}, "resources": {}},
                    "serverInfo": {"name": "memory", "version": "1"},
                },
            )
        elif method == "tools/list":
            await self._reply(rid, {"tools": TOOLS})
        elif method == "resources/list":
            await self._reply(rid, {"resources": [{"uri": "mem://a", "name": "a"}]})
        elif method == "resources/read":
            uri = params.get("uri")
            if uri == "mem://a":
                await self._reply(rid, {"contents": [{"uri": "mem://a", "text": "A"}]})
            else:
                await self.channel.push(jsonrpc.error(rid, jsonrpc.RESOURCE_NOT_FOUND, "no such resource"))
        elif method == "tools/call":
            await self._call(rid, params)
        else:
            await self.channel.push(jsonrpc.error(rid, jsonrpc.METHOD_NOT_FOUND, f"no {method}"))

    async def _call(self, rid: Any, params: dict[str, Any]) -> None:
        name, arguments = params.get("name"), jsonrpc.obj(params.get("arguments"))
        meta = jsonrpc.obj(params.get("_meta"))
        self.call_started.set()
        if name == "count":
            for step in range(1, int(arguments.get("to", 3)) + 1):
                await self.channel.push(
                    jsonrpc.notification(
                        "notifications/progress", {"progressToken": meta.get("progressToken"), "progress": step}
                    )
                )
            await self._reply(rid, _text("counted"))
        elif name == "hang":
            await anyio.sleep_forever()
        elif name == "fail":
            await self.channel.push(jsonrpc.error(rid, jsonrpc.INTERNAL_ERROR, "the server failed"))
        elif name == "die":
            self.channel.close("the memory server crashed")
        elif name == "ask":
            # A server-initiated request during the call; its answer becomes the result.
            ask_id = f"ask-{rid}"
            answered = anyio.Event()
            self._waiting[ask_id] = answered
            await self.channel.push(jsonrpc.request(ask_id, "roots/list"))
            await answered.wait()
            await self._reply(rid, {**_text("asked"), "structuredContent": self.client_answers[-1]})
        else:
            result = {**_text("ok"), "structuredContent": {"arguments": arguments, "meta": meta}}
            result["_meta"] = {SERVER_INFO_KEY: {"name": "memory", "version": "1"}}
            await self._reply(rid, result)

    async def _reply(self, rid: Any, result: dict[str, Any]) -> None:
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.channel.push(jsonrpc.result(rid, result))

    def opener(self) -> ChannelOpener:
        @asynccontextmanager
        async def open_memory() -> AsyncIterator[MemoryChannel]:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.serve)
                try:
                    yield self.channel
                finally:
                    tg.cancel_scope.cancel()

        return open_memory


def _text(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


def legacy_entry(**options: Any) -> ServerEntry:
    """A config entry for an upstream that speaks the session era (no server/discover probe)."""
    return ServerEntry.model_validate({"command": "memory", "protocol": "legacy", **options})
