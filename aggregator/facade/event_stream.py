"""An ASGI response whose body a coroutine writes as it goes (several tool calls in one stream).

`ToolStream` (llm_support) streams ONE tool call; a Responses request running the hub's tool
loop makes several model and tool calls inside one SSE stream. `EventStream` runs
`produce(emit)` and writes what it emits. Until the first `emit`, nothing is sent: an error
before any output is answered with its proper HTTP status and body (a bad alias is a 404,
not a 200 stream with an error event); an error after it is one last event (`encode_error`).
A client that disconnects cancels the producer, and with it the model or tool call in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.types import Receive, Scope, Send

from aggregator.facade.kit import Call
from aggregator.protocol.errors import ToolmuxError, internal_error, timeout_error

_log = logging.getLogger("toolmux.facade")

Emit = Callable[[bytes], Awaitable[None]]
MAX_QUEUED_WRITES = 256


class EventStream:
    def __init__(
        self,
        call: Call,
        produce: Callable[[Emit], Awaitable[None]],
        *,
        encode_error: Callable[[ToolmuxError], bytes],
        media_type: str = "text/event-stream",
        timeout: float | None = None,
    ) -> None:
        self.call = call
        self.produce = produce
        self.encode_error = encode_error
        self.media_type = media_type
        self.timeout = timeout or call.limit.timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writes, reads = anyio.create_memory_object_stream[bytes](MAX_QUEUED_WRITES)
        failure: list[ToolmuxError] = []

        async def run() -> None:
            async with writes:
                try:
                    with anyio.fail_after(self.timeout):
                        await self.produce(writes.send)
                except TimeoutError:
                    failure.append(timeout_error(self.timeout, "complete answer"))
                except ToolmuxError as exc:
                    failure.append(exc)
                except Exception:
                    _log.exception("stream failed (request id %s)", self.call.request_id)
                    failure.append(internal_error(self.call.request_id))

        async def watch_disconnect(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            try:
                await self._respond(reads, failure, scope, receive, send)
            finally:
                tg.cancel_scope.cancel()

    async def _respond(
        self,
        reads: anyio.abc.ObjectReceiveStream[bytes],
        failure: list[ToolmuxError],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        async with reads:
            try:
                first = await reads.receive()
            except anyio.EndOfStream:
                if failure:
                    await self.call.spec.render(failure[0], self.call.request_id)(scope, receive, send)
                    return
                first = b""
            await send({"type": "http.response.start", "status": 200, "headers": self._headers()})
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for data in reads:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        tail = self.encode_error(failure[0]) if failure else b""
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", self.media_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", self.call.request_id.encode()),
        ]
