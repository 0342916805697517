"""Remote MCP servers over HTTP: streamable HTTP (both eras) and the legacy HTTP+SSE transport.

`transport: auto` (the default) tries streamable HTTP first; when the first POST is answered
404, 405 or another 4xx that is not a JSON-RPC error, the server is taken for a legacy
HTTP+SSE one and the same URL is opened as an event stream, as the MCP specification's
backwards-compatibility section describes. `streamable-http` and `sse` force one transport.
See docs/upstreams-http.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup

from aggregator.config import ServerEntry
from aggregator.upstreams.channel import Channel, ChannelClosed
from aggregator.upstreams.http_common import create_client, safe_url
from aggregator.upstreams.http_sse import SseChannel
from aggregator.upstreams.http_streamable import StreamableHttpChannel

__all__ = ["AutoChannel", "http_opener", "open_http"]


class AutoChannel:
    """Streamable HTTP unless the first POST says the server only speaks the legacy SSE transport."""

    def __init__(self, name: str, entry: ServerEntry, client: httpx2.AsyncClient, tg: TaskGroup) -> None:
        self.name = name
        self._entry = entry
        self._client = client
        self._tg = tg
        self._streamable = StreamableHttpChannel(name, entry, client, tg)
        self._chosen: Channel | None = None
        self._decided = anyio.Event()
        self._choosing = anyio.Lock()

    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        if self._chosen is None:
            async with self._choosing:
                if self._chosen is None:
                    await self._choose(message, headers)
                    return
        await self._chosen.send(message, headers=headers)

    async def _choose(self, message: dict[str, Any], headers: dict[str, str] | None) -> None:
        if "method" not in message or "id" not in message:
            self._settle(self._streamable)
            await self._streamable.send(message, headers=headers)
            return
        status = await self._streamable.probe(message, headers)
        if status is None:
            self._settle(self._streamable)
            return
        try:
            sse = await SseChannel.connect(self.name, self._entry, self._client, self._tg)
        except ChannelClosed as exc:
            reason = (
                f"streamable HTTP POST answered HTTP {status}, and the legacy SSE transport failed too: {exc.reason}"
            )
            self._streamable.close_quietly(reason)
            self._settle(self._streamable)
            return
        self._streamable.close_quietly("replaced by the legacy SSE transport")
        self._settle(sse)
        await sse.send(message, headers=headers)

    def _settle(self, channel: Channel) -> None:
        self._chosen = channel
        self._decided.set()

    async def receive(self) -> dict[str, Any]:
        await self._decided.wait()
        assert self._chosen is not None
        return await self._chosen.receive()

    async def aclose(self) -> None:
        await self._streamable.aclose()
        if self._chosen is not None and self._chosen is not self._streamable:
            await self._chosen.aclose()

    def describe(self) -> str:
        if self._chosen is None:
            return f"http (auto): {safe_url(self._entry.url or '')}"
        return self._chosen.describe()


@asynccontextmanager
async def open_http(name: str, entry: ServerEntry, auth: httpx2.Auth | None = None) -> AsyncIterator[Channel]:
    """One HTTP connection pool and the channel over it, for one upstream session."""
    failure: ChannelClosed | None = None
    async with create_client(entry, auth) as client, anyio.create_task_group() as tg:
        channel: Channel
        try:
            if entry.transport == "sse":
                channel = await SseChannel.connect(name, entry, client, tg)
            elif entry.transport == "streamable-http":
                channel = StreamableHttpChannel(name, entry, client, tg)
            else:
                channel = AutoChannel(name, entry, client, tg)
        except ChannelClosed as exc:
            # Raised outside the task group, so the supervisor sees the reason, not an exception group.
            failure = exc
            tg.cancel_scope.cancel()
        else:
            try:
                yield channel
            finally:
                with anyio.CancelScope(shield=True):
                    await channel.aclose()
                tg.cancel_scope.cancel()
    if failure is not None:
        raise failure


def http_opener(
    name: str, entry: ServerEntry, data_dir: Path | None = None
) -> Callable[[], AbstractAsyncContextManager[Channel]]:
    if not entry.url:
        raise ValueError(f"server {name!r} has no url")
    auth: httpx2.Auth | None = None
    if entry.oauth is not None and data_dir is not None:
        from aggregator.oauth.upstream.auth import UpstreamOAuthAuth

        # One per upstream, kept across reconnects: the token lives as long as it is valid.
        auth = UpstreamOAuthAuth(name, entry.url, entry.oauth, data_dir)
    return lambda: open_http(name, entry, auth)
