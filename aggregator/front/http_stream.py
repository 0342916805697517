"""HTTP plumbing of the MCP endpoint: bodies, JSON-RPC error answers, and the response stream
that is JSON or SSE, resumable for 2025 sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from aggregator.protocol import jsonrpc

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

HEARTBEAT_SECONDS = 20.0
RETRY_MS = 2000  # how long a client waits before resuming a dropped stream
MAX_BACKLOG = 1000  # events kept per stream for a client that comes back
RESUME_TTL = 300.0  # seconds a finished, undelivered stream waits for its client
JSON = b"application/json"
BODY_TIMEOUT = 30.0  # seconds a client may take to send one request body


SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


async def start_sse(send: Send, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Begin a 200 text/event-stream response (no proxy buffering, no caching)."""
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *(extra or [])]})


class BodyTooLarge(Exception):
    pass


def header_map(scope: dict[str, Any]) -> dict[str, str]:
    # Values are stripped: RFC 9110 excludes surrounding whitespace from a field value, and some
    # HTTP parsers (httptools) hand it over.
    return {k.decode("latin-1"): v.decode("latin-1").strip() for k, v in scope["headers"]}


async def read_body(receive: Receive, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The whole request body; BodyTooLarge past `limit`, TimeoutError when it trickles in too slowly."""
    message = await receive()
    first = _chunk(message, 0, limit)
    if not message.get("more_body"):
        return first
    # Most bodies arrive in one piece; only a body that keeps coming gets a deadline.
    chunks, size = [first], len(first)
    with anyio.fail_after(timeout):
        while True:
            message = await receive()
            chunk = _chunk(message, size, limit)
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def _chunk(message: dict[str, Any], size: int, limit: int) -> bytes:
    if message["type"] == "http.disconnect":
        raise anyio.EndOfStream
    chunk: bytes = message.get("body", b"")
    if size + len(chunk) > limit:
        raise BodyTooLarge
    return chunk


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, content_type: bytes = JSON
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_rpc_error(
    send: Send,
    status: int,
    request_id: Any,
    code: int,
    message: str,
    data: Any = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send_body(send, status, jsonrpc.dumps(jsonrpc.error(request_id, code, message, data)), headers)


class ResponseStream:
    """One POST's response: JSON when only the result comes, SSE once anything precedes it.

    A legacy session's SSE stream is resumable (2025-11-25, SEP-1699): it opens with a priming
    event (an id, empty data, a `retry` hint), every event has an id, and if the client drops the
    connection the events keep collecting until it comes back with `GET` + `Last-Event-ID`.
    """

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], *, resume_id: str | None = None) -> None:
        self._send = send
        self._headers = headers
        # asyncio's own lock and event: one of each per request, and anyio's look up the running
        # backend (sniffio) on creation. The hub runs on asyncio only.
        self._lock = asyncio.Lock()
        self.sse = False
        self.done = False
        self.client_gone = False
        self.resume_id = resume_id
        self.finished = asyncio.Event()
        # Called once when the response turns into an SSE stream.
        self.on_sse: Callable[[], object] | None = None
        self._seq = 0
        self._backlog: list[tuple[int, bytes]] = []

    async def _start_sse(self) -> None:
        self.sse = True
        if self.on_sse is not None:
            self.on_sse()
        await start_sse(self._send, self._headers)
        if self.resume_id is not None:
            await self._send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": f"id: {self.resume_id}-0\nretry: {RETRY_MS}\ndata: \n\n".encode(),
                }
            )

    def _frame(self, message: dict[str, Any]) -> bytes:
        self._seq += 1
        frame = b"event: message\ndata: " + jsonrpc.dumps(message) + b"\n\n"
        if self.resume_id is not None:
            frame = f"id: {self.resume_id}-{self._seq}\n".encode() + frame
            self._backlog.append((self._seq, frame))
            del self._backlog[:-MAX_BACKLOG]
        return frame

    async def emit(self, message: dict[str, Any]) -> None:
        async with self._lock:
            if self.done or (self.client_gone and self.resume_id is None):
                raise anyio.ClosedResourceError
            if not self.sse:
                await self._start_sse()
            frame = self._frame(message)
            if not self.client_gone:
                await self._send({"type": "http.response.body", "more_body": True, "body": frame})

    async def heartbeat(self) -> None:
        async with self._lock:
            if self.sse and not self.done and not self.client_gone:
                await self._send({"type": "http.response.body", "body": b":\n\n", "more_body": True})

    async def finish(self, message: dict[str, Any] | None, status: int = 200) -> None:
        async with self._lock:
            if self.done:
                return
            self.done = True
            try:
                if self.sse:
                    frame = self._frame(message) if message is not None else b""
                    if not self.client_gone:
                        await self._send({"type": "http.response.body", "body": frame})
                elif self.client_gone:
                    return
                elif message is None:
                    await send_body(self._send, 202, b"", self._headers)
                else:
                    await send_body(self._send, status, jsonrpc.dumps(message), self._headers)
            finally:
                self.finished.set()

    async def resume(self, send: Send, after: int) -> None:
        """Continue this stream on a new connection: replay events after `after`, then go live."""
        async with self._lock:
            await start_sse(send)
            for seq, frame in self._backlog:
                if seq > after:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            if self.done:
                await send({"type": "http.response.body", "body": b""})
                return
            self._send = send
            self.client_gone = False
