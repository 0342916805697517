"""An in-process SDK server (a built-in domain) reached over the SDK's in-memory streams.

Same JSON-RPC path as a child process, without a process: ~0.2 ms a call instead of a spawn,
at the price of isolation (a crash in the domain is a crash in the hub).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.client._memory import InMemoryTransport
from mcp.server import Server
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import jsonrpc_message_adapter
from pydantic import ValidationError

from aggregator.upstreams.channel import ChannelClosed

_log = logging.getLogger("toolmux.upstream")


class MemoryChannel:
    def __init__(self, name: str, read: Any, write: Any) -> None:
        self.name = name
        self._read = read
        self._write = write

    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        try:
            typed = jsonrpc_message_adapter.validate_python(message)
        except ValidationError as exc:
            raise ChannelClosed(f"{self.name}: could not encode a message: {exc.errors()[0]['msg']}") from None
        try:
            await self._write.send(SessionMessage(typed))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ChannelClosed(f"in-process server {self.name!r} stopped") from None

    async def receive(self) -> dict[str, Any]:
        while True:
            try:
                item = await self._read.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                raise ChannelClosed(f"in-process server {self.name!r} stopped") from None
            if isinstance(item, Exception):
                _log.warning("%s: transport error: %s", self.name, item)
                continue
            dumped: dict[str, Any] = item.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
            return dumped

    async def aclose(self) -> None:
        await self._write.aclose()

    def describe(self) -> str:
        return "in-process"


@asynccontextmanager
async def open_memory_channel(name: str, server: Server[Any]) -> AsyncIterator[MemoryChannel]:
    async with InMemoryTransport(server) as (read, write):
        yield MemoryChannel(name, read, write)
