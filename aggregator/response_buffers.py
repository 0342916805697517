"""Bounds on the response bytes the hub holds for clients that do not read them.

A response body is in the hub's memory from the moment it is built until the client's socket
takes the last byte. A client that asks for a 10 MB result and never reads it used to pin those
bytes (and the transport's copy of them) for as long as it kept the connection: 20 such clients
added 193 MB to the hub. Here, for every HTTP response the app sends:

- **A global bound** (`http.max_buffered_response_bytes`): a response body that would take the
  bytes held for all clients past it is not sent; the client gets a small 503 with `Retry-After`
  instead, and the body is freed at once.
- **A per-connection bound** (`http.max_connection_response_bytes`): a body larger than it is
  refused the same way (413 naming the limit): the hub will not hold that much for one client.
- **Backpressure on the write**: a large body goes out in slices of `SLICE` bytes, each only once
  the client has taken the previous ones (uvicorn waits for the transport to drain). A client that
  takes nothing for `http.send_timeout` seconds is disconnected, and its bytes are released.

A response's headers are held back until its first body part is there, so that a refused body
can still be answered with an error status. Bodies streamed from disk (storage downloads) are
counted by the part, as they are held, not by their declared length. Small answers (up to `SLICE`
bytes, nearly all of them) pass straight through, uncounted. `buffered` is the gauge `/metrics`
shows (`toolmux_buffered_response_bytes`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Gauge

from aggregator.protocol.errors import ErrorCode, ToolmuxError, jsonrpc_error, plain_body, retry_headers
from aggregator.protocol.jsonrpc import dumps

Send = Callable[[dict[str, Any]], Awaitable[None]]

SLICE = 64 * 1024


class ClientStalled(Exception):
    """The client took no bytes of its response for the send timeout: the connection is dropped."""


class ResponseBuffers:
    """The hub-wide account of response bytes held for clients (one per app)."""

    def __init__(self, total: int, per_connection: int, send_timeout: float) -> None:
        self.total = total
        self.per_connection = per_connection
        self.send_timeout = send_timeout
        self.buffered = 0  # bytes of response bodies held for clients right now
        self.refused = 0  # responses refused because a bound would have been passed
        self.dropped = 0  # connections dropped because their client stopped reading
        self.sending = 0  # large bodies being written out right now

    def refusal(self, size: int) -> ToolmuxError | None:
        """Why a response of `size` bytes may not be held now (None: it may)."""
        if size > self.per_connection:
            return ToolmuxError(
                f"the response ({size} bytes) is larger than the {self.per_connection} bytes the hub holds for one "
                "connection (http.max_connection_response_bytes); ask for less",
                code=ErrorCode.TOO_LARGE,
                reason="response_too_large",
            )
        if self.buffered + size > self.total:
            return ToolmuxError(
                "the hub holds too many unread responses right now (http.max_buffered_response_bytes); retry shortly",
                code=ErrorCode.UNAVAILABLE,
                retry_after=1,
                reason="response_buffers_full",
            )
        return None

    def register(self, registry: CollectorRegistry) -> None:
        """The gauge and counters of these bounds on the hub's `/metrics`."""
        Gauge(
            "toolmux_buffered_response_bytes",
            "Bytes of response bodies the hub holds for clients that have not read them yet",
            registry=registry,
        ).set_function(lambda: self.buffered)
        Gauge(
            "toolmux_refused_responses",
            "Responses refused because they would pass a bound on buffered response bytes",
            registry=registry,
        ).set_function(lambda: self.refused)
        Gauge(
            "toolmux_stalled_clients_dropped",
            "Connections dropped because their client read nothing for http.send_timeout",
            registry=registry,
        ).set_function(lambda: self.dropped)

    def wrap(self, send: Send, request_id: str, jsonrpc: bool) -> BoundedSend:
        """`send` for one request, held to these bounds. `jsonrpc`: refusals are JSON-RPC errors."""
        return BoundedSend(self, send, request_id, jsonrpc)


class BoundedSend:
    """One response's `send`: holds its start until the first body part, refuses or slices large parts."""

    __slots__ = ("buffers", "held_start", "jsonrpc", "request_id", "send", "swallow")

    def __init__(self, buffers: ResponseBuffers, send: Send, request_id: str, jsonrpc: bool) -> None:
        self.buffers = buffers
        self.send = send
        self.request_id = request_id
        self.jsonrpc = jsonrpc
        self.held_start: dict[str, Any] | None = None
        self.swallow = False

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.held_start = message
            return
        if kind != "http.response.body":
            await self.send(message)
            return
        if self.swallow:
            return
        body: bytes = message.get("body", b"")
        if self.held_start is not None:
            start, self.held_start = self.held_start, None
            problem = self.buffers.refusal(len(body)) if len(body) > SLICE else None
            if problem is not None:
                self.swallow = True
                self.buffers.refused += 1
                await self._refuse(problem)
                return
            await self.send(start)
        if len(body) <= SLICE:
            await self.send(message)
        else:
            await self._send_sliced(body, bool(message.get("more_body")))

    async def close(self) -> None:
        """The app is done: a start it sent without any body still goes out."""
        if self.held_start is not None:
            start, self.held_start = self.held_start, None
            await self.send(start)

    async def _send_sliced(self, body: bytes, more_body: bool) -> None:
        buffers = self.buffers
        held = len(body)
        buffers.buffered += held
        buffers.sending += 1
        view = memoryview(body)
        try:
            for offset in range(0, len(body), SLICE):
                piece = bytes(view[offset : offset + SLICE])
                last = offset + SLICE >= len(body)
                with anyio.move_on_after(buffers.send_timeout) as waited:
                    await self.send({"type": "http.response.body", "body": piece, "more_body": more_body or not last})
                if waited.cancelled_caught:
                    buffers.dropped += 1
                    raise ClientStalled(f"the client read nothing for {buffers.send_timeout:g} s")
                held -= len(piece)
                buffers.buffered -= len(piece)
        finally:
            buffers.buffered -= held  # what was not sent is freed with the connection
            buffers.sending -= 1

    async def _refuse(self, problem: ToolmuxError) -> None:
        if self.jsonrpc:
            body = dumps({"jsonrpc": "2.0", "id": None, "error": jsonrpc_error(problem)})
        else:
            body = dumps(plain_body(problem, self.request_id))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", self.request_id.encode()),
            *((k.encode(), v.encode()) for k, v in retry_headers(problem).items()),
        ]
        await self.send({"type": "http.response.start", "status": problem.status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def is_stall(exc: BaseException) -> bool:
    """True when `exc` is ClientStalled, or a group of nothing but (task groups wrap what they raise)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_stall(e) for e in exc.exceptions)
    return isinstance(exc, ClientStalled)
