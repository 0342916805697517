"""The legacy HTTP+SSE transport (MCP 2024-11-05): one GET event stream in, POSTs out.

The server's first event, `endpoint`, names the URL to POST messages to (relative or absolute,
same origin only). Every message from the server arrives on the GET stream; the stream ending
ends the channel (a new stream would be a new session, so the supervisor reconnects).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup, TaskStatus

from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc
from aggregator.upstreams.channel import ChannelClosed
from aggregator.upstreams.http_common import (
    AUTH_STATUSES,
    EVENT_STREAM,
    Inbox,
    auth_failure,
    content_type,
    describe_http_error,
    event_stream,
    jsonrpc_error_body,
    open_stream,
    parse_messages,
    read_body,
    safe_url,
    same_origin,
    status_text,
    stream_timeout,
)

_log = logging.getLogger("toolmux.upstream")

ERROR_BODY_BYTES = 64 * 1024


class SseChannel:
    def __init__(self, name: str, entry: ServerEntry, client: httpx2.AsyncClient) -> None:
        assert entry.url is not None
        self.name = name
        self._entry = entry
        self._url = entry.url
        self._client = client
        self._inbox = Inbox()
        self._endpoint: httpx2.URL | None = None

    @classmethod
    async def connect(cls, name: str, entry: ServerEntry, client: httpx2.AsyncClient, tg: TaskGroup) -> SseChannel:
        """Open the event stream and wait for the `endpoint` event; raises ChannelClosed when that fails."""
        channel = cls(name, entry, client)
        await tg.start(channel._read_stream)
        return channel

    # --- Channel ----------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        if self._inbox.closed or self._endpoint is None:
            raise ChannelClosed(self._inbox.reason or "the event stream is not open")
        request_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            with anyio.fail_after(self._entry.timeouts.connect):
                async with open_stream(
                    self._client, "POST", self._endpoint, content=jsonrpc.dumps(message), headers=request_headers
                ) as response:
                    if response.status_code in AUTH_STATUSES:
                        self._fail(auth_failure(self.name, response).reason)
                        return
                    if response.is_success:
                        return
                    body = await _read_error_body(response)
                    self._answer_status(message, response, body)
        except TimeoutError:
            self._answer_error(message, jsonrpc.UPSTREAM_TIMEOUT, f"{self._where()}: timed out posting the message")
        except httpx2.HTTPError as exc:
            why = describe_http_error(exc)
            self._answer_error(message, jsonrpc.UPSTREAM_UNAVAILABLE, f"{self._where()}: {why}")
            if isinstance(exc, httpx2.ConnectError):
                self._fail(f"{self._where()}: {why}")

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def aclose(self) -> None:
        self._inbox.close("the hub closed the connection")
        self._inbox.dispose()

    def describe(self) -> str:
        return f"sse: {safe_url(self._url)}"

    # --- the event stream -------------------------------------------------------------------------
    async def _read_stream(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        reason = f"{self._where()}: the event stream ended"
        try:
            async with open_stream(
                self._client, "GET", self._url, headers={"Accept": EVENT_STREAM}, timeout=stream_timeout(self._entry)
            ) as response:
                if response.status_code in AUTH_STATUSES:
                    raise auth_failure(self.name, response)
                if not response.is_success:
                    raise ChannelClosed(f"{self._where()}: the event stream answered {status_text(response)}")
                if content_type(response) != EVENT_STREAM:
                    kind = content_type(response) or "no content type"
                    raise ChannelClosed(f"{self._where()}: the GET answered {kind}, not an event stream")
                events = event_stream(response).__aiter__()
                with anyio.fail_after(self._entry.timeouts.connect):
                    while self._endpoint is None:
                        event = await events.__anext__()
                        if event.event == "endpoint":
                            self._endpoint = self._endpoint_url(event.data)
                        else:
                            self._take(event.event, event.data)
                started = True
                task_status.started()
                async for event in events:
                    self._take(event.event, event.data)
        except StopAsyncIteration:
            reason = f"{self._where()}: the event stream ended before naming its endpoint"
        except TimeoutError:
            reason = f"{self._where()}: no endpoint event within {self._entry.timeouts.connect:g} s"
        except ChannelClosed as exc:
            reason = exc.reason
        except httpx2.HTTPError as exc:
            reason = f"{self._where()}: {describe_http_error(exc)}"
        self._fail(reason)
        if not started:
            raise ChannelClosed(reason)

    def _endpoint_url(self, data: str) -> httpx2.URL:
        base = httpx2.URL(self._url)
        try:
            endpoint = base.join(data.strip())
        except httpx2.InvalidURL:
            raise ChannelClosed(f"{self._where()}: the endpoint event named an invalid URL") from None
        if not same_origin(base, endpoint):
            raise ChannelClosed(f"{self._where()}: the endpoint event names another origin ({endpoint.host}); refused")
        return endpoint

    def _take(self, kind: str, data: str) -> None:
        if kind != "message" or not data:
            return
        messages = parse_messages(data)
        if messages is None:
            _log.warning("%s: ignoring an event that is not JSON-RPC: %.200r", self.name, data)
            return
        for message in messages:
            self._inbox.put(message)

    # --- failures ---------------------------------------------------------------------------------
    def _answer_error(self, message: dict[str, Any], code: int, text: str) -> None:
        if "method" in message and "id" in message:
            self._inbox.put(jsonrpc.error(message["id"], code, text))
        else:
            _log.warning("%s: %s (while sending %s)", self.name, text, message.get("method") or "a response")

    def _answer_status(self, message: dict[str, Any], response: httpx2.Response, body: bytes) -> None:
        carried = jsonrpc_error_body(body)
        if carried is not None and "method" in message and "id" in message:
            self._inbox.put({**carried, "id": message["id"]})
            return
        code = jsonrpc.UPSTREAM_UNAVAILABLE if response.status_code >= 500 else jsonrpc.INTERNAL_ERROR
        self._answer_error(message, code, f"{self._where()}: answered {status_text(response)}")

    def _fail(self, reason: str) -> None:
        if not self._inbox.closed:
            _log.warning("%s: %s", self.name, reason)
        self._inbox.close(reason)

    def _where(self) -> str:
        return f"server {self.name!r} ({safe_url(self._url)})"


async def _read_error_body(response: httpx2.Response) -> bytes:
    try:
        return await read_body(response, ERROR_BODY_BYTES)
    except (httpx2.HTTPError, ValueError):
        return b""
