"""Pieces both HTTP channels share: the pooled client, an inbox, redirects, and error wording.

Configured headers (`entry.headers`) may carry credentials: they live only in the client's
default headers and are never logged or put into an error. URLs are shown without userinfo,
query or fragment for the same reason.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2

from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc, sse
from aggregator.upstreams.channel import ChannelClosed

_log = logging.getLogger("toolmux.upstream")

JSON_AND_SSE = "application/json, text/event-stream"
EVENT_STREAM = "text/event-stream"
MAX_EVENT_BYTES = 64 * 1024 * 1024  # one SSE event (one JSON-RPC message): large tool results fit
MAX_BODY_BYTES = 256 * 1024 * 1024  # one JSON response body, the same bound as a stdio line
MAX_REDIRECTS = 5
# An idle event stream is re-opened after this long (a half-open TCP connection cannot hang it forever).
STREAM_IDLE_S = 300.0
AUTH_STATUSES = (401, 403)


def safe_url(url: httpx2.URL | str) -> str:
    """The URL as shown to people: no userinfo, query or fragment (they can hold secrets)."""
    parsed = httpx2.URL(str(url))
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def status_text(response: httpx2.Response) -> str:
    reason = response.reason_phrase or httpx2.codes.get_reason_phrase(response.status_code)
    text = f"HTTP {response.status_code} {reason}".rstrip()
    location = response.headers.get("location") if response.is_redirect else None
    if location:
        try:
            target = safe_url(response.request.url.join(location))
        except httpx2.InvalidURL:
            target = "an invalid location"
        text += f" to {target} (not followed: only same-origin redirects that keep the method are)"
    return text


def auth_failure(name: str, response: httpx2.Response) -> ChannelClosed:
    """401/403 close the channel: retrying with the same credentials cannot help."""
    return ChannelClosed(
        f"{safe_url(response.request.url)} answered {status_text(response)}: check the credentials in "
        f"mcpServers.{name}.headers"
    )


async def event_stream(response: httpx2.Response) -> AsyncIterator[sse.Event]:
    """The events of an event-stream response; an oversized event is a transport failure (SSEError)."""
    try:
        async for event in sse.aiter_events(response.aiter_bytes(), max_event_size=MAX_EVENT_BYTES):
            yield event
    except sse.EventTooLarge as exc:
        raise httpx2.SSEError(str(exc)) from None


def describe_http_error(exc: httpx2.HTTPError) -> str:
    """A short, secret-free description of a transport failure."""
    if isinstance(exc, httpx2.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot connect ({exc or 'connection refused'})"
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out waiting for the server"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return f"the server broke the HTTP protocol ({exc})"
    if isinstance(exc, httpx2.SSEError):
        return f"bad event stream ({exc})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def create_client(entry: ServerEntry, auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """One pooled client per channel: keep-alive connections, TCP keep-alive, the configured headers
    (and the server's OAuth sign-in, when it has one)."""
    timeouts = entry.timeouts
    transport = httpx2.AsyncHTTPTransport(
        limits=httpx2.Limits(max_connections=256, max_keepalive_connections=32, keepalive_expiry=60.0),
        socket_options=[
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
        ],
    )
    return httpx2.AsyncClient(
        headers=entry.headers,
        auth=auth,
        timeout=httpx2.Timeout(timeouts.connect, read=max(timeouts.call, timeouts.list) + 5.0),
        transport=transport,
        follow_redirects=False,
    )


def stream_timeout(entry: ServerEntry) -> httpx2.Timeout:
    """For long-lived event streams: the idle bound instead of the call bound."""
    return httpx2.Timeout(entry.timeouts.connect, read=STREAM_IDLE_S)


def same_origin(a: httpx2.URL, b: httpx2.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


@asynccontextmanager
async def open_stream(
    client: httpx2.AsyncClient, method: str, url: httpx2.URL | str, **kwargs: Any
) -> AsyncIterator[httpx2.Response]:
    """`client.stream(...)` following only redirects that keep the method and the origin.

    The configured headers were meant for this server alone, so a redirect elsewhere is not
    followed; the redirect response is handed back and treated as the failure it is.
    """
    request = client.build_request(method, url, **kwargs)
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        following = response.next_request
        if (
            following is None
            or following.method != request.method
            or not same_origin(request.url, following.url)
            or following.url.userinfo != request.url.userinfo
        ):
            break
        try:
            await response.aread()
        finally:
            await response.aclose()
        request = following
    try:
        yield response
    finally:
        await response.aclose()


async def read_body(response: httpx2.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"the response body exceeded {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_messages(body: bytes | str) -> list[dict[str, Any]] | None:
    """The JSON-RPC messages in a body (one message or a batch); None when it is not JSON-RPC."""
    try:
        decoded = jsonrpc.loads(body)
    except ValueError:
        return None
    items = decoded if isinstance(decoded, list) else [decoded]
    if not items or any(jsonrpc.check_message(item) is not None for item in items):
        return None
    return items


def jsonrpc_error_body(body: bytes) -> dict[str, Any] | None:
    """The JSON-RPC error carried by an HTTP error body, if it is one."""
    messages = parse_messages(body)
    if messages and len(messages) == 1 and isinstance(messages[0].get("error"), dict):
        return messages[0]
    return None


def content_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


class Inbox:
    """Messages from the server, in arrival order, until the channel closes with a reason."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self.reason: str | None = None

    def put(self, message: dict[str, Any]) -> None:
        try:
            self._send.send_nowait(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            _log.debug("dropping a message that arrived after the channel closed")

    def close(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._send.close()

    @property
    def closed(self) -> bool:
        return self.reason is not None

    async def get(self) -> dict[str, Any]:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise ChannelClosed(self.reason or "the connection closed") from None

    def dispose(self) -> None:
        self._send.close()
        self._receive.close()
