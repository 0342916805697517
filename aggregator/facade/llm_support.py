"""What the OpenAI- and Ollama-compatible faces share: answer headers and streamed tool calls.

A streaming chat is ONE tool call (`models-chat` with stream=true) whose chunks arrive as
progress notifications (message = the JSON of one chat.completion.chunk). `ToolStream` is the
ASGI response that runs that call: it waits for the first chunk or the end of the call, so
an error before any output still gets its proper HTTP status; then it writes each chunk in the
face's framing (SSE or NDJSON) and ends with the face's closing lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from aggregator.facade.kit import Call
from aggregator.protocol.errors import ToolmuxError, internal_error, timeout_error
from servers.kit.errors import structured_of

_log = logging.getLogger("toolmux.facade")


def meta_headers(answer: dict[str, Any], started: float, request_id: str) -> dict[str, str]:
    """x-toolmux-* headers: overhead (total minus the answering upstream's time), attempts, cost."""
    headers = {"x-request-id": request_id}
    meta = answer.get("toolmux")
    if isinstance(meta, dict):
        total_ms = (time.perf_counter() - started) * 1000
        upstream_ms = float(meta.get("upstream_ms") or 0.0)
        headers["x-toolmux-overhead-ms"] = f"{max(total_ms - upstream_ms, 0.0):.3f}"
        headers["x-toolmux-attempts"] = str(meta.get("attempts", 0))
        headers["x-toolmux-cost"] = f"{float(meta.get('cost') or 0.0):.8f}"
        headers["x-toolmux-cache"] = "hit" if meta.get("cache_hit") else "miss"
        if meta.get("deployment"):
            headers["x-toolmux-deployment"] = str(meta["deployment"])
    return headers


ErrorChunk = Callable[[ToolmuxError], bytes]
MAX_QUEUED_CHUNKS = 1024
# Every stream's queue while it lives, so /metrics can say how much waits for slow clients.
LIVE_QUEUES: weakref.WeakSet[_ChunkQueue] = weakref.WeakSet()


def buffered_bytes() -> int:
    """Streamed bytes queued for clients that have not read them yet (summed at scrape time)."""
    return sum(len(item.encode()) for queue in list(LIVE_QUEUES) for item in list(queue.items))


class _ChunkQueue:
    """Chunks from the tool call's progress handler to the response writer.

    A deque and one loop future: this runs once per streamed token, where an anyio memory
    stream costs a checkpoint and several task lookups on each side. A producer more than
    MAX_QUEUED_CHUNKS ahead of a slow client waits until the writer takes them.
    """

    def __init__(self) -> None:
        self.items: deque[str] = deque()
        self.ended = False
        self._ready: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        LIVE_QUEUES.add(self)

    async def put(self, item: str) -> None:
        self.items.append(item)
        _wake(self._ready)
        if len(self.items) > MAX_QUEUED_CHUNKS and not self.ended:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def end(self) -> None:
        self.ended = True
        _wake(self._ready)
        _wake(self._drained)

    def take(self) -> list[str]:
        taken = list(self.items)
        self.items.clear()
        _wake(self._drained)
        return taken

    async def wait(self) -> None:
        """Until a chunk is queued or the call is over."""
        while not self.items and not self.ended:
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._ready
            finally:
                self._ready = None


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class ToolStream:
    """ASGI response running one streaming tool call and writing its chunks as they arrive."""

    def __init__(
        self,
        call: Call,
        tool: str,
        args: dict[str, Any],
        *,
        media_type: str,
        encode_chunk: Callable[[str], bytes | None],
        encode_end: Callable[[dict[str, Any]], bytes],
        encode_error: ErrorChunk,
        timeout: float | None = None,
    ) -> None:
        self.call = call
        self.tool = tool
        self.args = args
        self.request_id = call.request_id
        self.timeout = timeout or call.limit.timeout
        self.media_type = media_type
        self.encode_chunk = encode_chunk
        self.encode_end = encode_end
        self.encode_error = encode_error
        self.error_response = call.spec.render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = _ChunkQueue()
        outcome: dict[str, Any] = {}

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if message:
                await chunks.put(message)

        async def run_call() -> None:
            try:
                with anyio.fail_after(self.timeout):
                    result = await self.call.tool(self.tool, self.args, progress=on_progress)
                outcome["answer"] = structured_of(result, self.tool)
            except TimeoutError:
                outcome["error"] = timeout_error(self.timeout, "complete answer")
            except ToolmuxError as exc:
                outcome["error"] = exc
            except Exception:
                _log.exception("streaming %s failed (request id %s)", self.tool, self.request_id)
                outcome["error"] = internal_error(self.request_id)
            finally:
                chunks.end()  # tells the writer the call is over

        async def watch_disconnect(scope_to_cancel: anyio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    scope_to_cancel.cancel()  # ends the tool call, and with it the upstream request
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_call)
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            try:
                await self._respond(chunks, outcome, scope, receive, send)
            finally:
                tg.cancel_scope.cancel()

    async def _respond(
        self, chunks: _ChunkQueue, outcome: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        await chunks.wait()
        if not chunks.items:  # the call ended before its first chunk
            error = outcome.get("error")
            if error is not None:
                await self.error_response(error, self.request_id)(scope, receive, send)
                return
            await self._start(send)
            await self._body(send, self.encode_end(outcome["answer"]), more=False)
            return
        await self._start(send)
        first = True
        while True:
            if not first and not chunks.ended:
                # The first chunk leaves at once (time to first token); later ones first let
                # chunks already on their way (ready tasks) join them, so a burst from the
                # backend leaves in one write rather than one per token.
                await asyncio.sleep(0)
            first = False
            encoded = b"".join(filter(None, map(self.encode_chunk, chunks.take())))
            if chunks.ended and not chunks.items:  # the call is over: the end goes in the same write
                error = outcome.get("error")
                tail = self.encode_error(error) if error is not None else None
                await self._body(send, encoded + (tail or self.encode_end(outcome["answer"])), more=False)
                return
            if encoded:
                await self._body(send, encoded)
            await chunks.wait()

    async def _start(self, send: Send) -> None:
        headers = [
            (b"content-type", self.media_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", self.request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _body(self, send: Send, data: bytes, *, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})


def no_store(request: Request) -> bool:
    """`Cache-Control: no-store` (or no-cache) on the request bypasses the answer cache."""
    value = request.headers.get("cache-control", "").lower()
    return "no-store" in value or "no-cache" in value


__all__ = ["ToolStream", "meta_headers", "no_store"]
