"""Small remote MCP servers speaking the real wire protocols, each with one way to misbehave.

They are Starlette apps served on loopback by `tests.support.asgi.serve_asgi`; what they saw
(headers, messages, initializes) is kept for the test to assert on.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PROTOCOL = "2025-11-25"
ECHO_TOOL = {"name": "echo", "description": "Echoes its text", "inputSchema": {"type": "object"}}


def tool(name: str) -> dict[str, Any]:
    return {**ECHO_TOOL, "name": name}


def ok(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


def sse_event(data: Any, *, event: str | None = None, event_id: str | None = None, retry: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    if event is not None:
        lines.append(f"event: {event}")
    payload = data if isinstance(data, str) else json.dumps(data)
    lines.extend(f"data: {line}" for line in payload.split("\n"))
    return "\n".join(lines) + "\n\n"


def initialize_result(params: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "protocolVersion": params.get("protocolVersion", PROTOCOL),
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": name, "version": "1.0"},
    }


@dataclass
class SessionServer:
    """Handshake-era streamable HTTP server with sessions it can forget, and tools that fail on purpose.

    Tools: `echo` (JSON answer), `streamed` (SSE answer after a progress notification),
    `explode` (HTTP 500), `garble` (200 with an HTML body), `garble_sse` (an event stream of
    non-JSON-RPC data that ends without an answer), `wait` (streams progress, then never answers).
    With `require_token` set, every request without `Authorization: Bearer <token>` gets 401.
    """

    require_token: str | None = None
    offer_get_stream: bool = True
    waiting: anyio.Event = field(default_factory=anyio.Event)
    cancelled: anyio.Event = field(default_factory=anyio.Event)
    wait_abandoned: anyio.Event = field(default_factory=anyio.Event)
    sessions: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    initializes: list[dict[str, Any]] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    get_headers: list[dict[str, str]] = field(default_factory=list)
    resumed: anyio.Event = field(default_factory=anyio.Event)
    tools: list[dict[str, Any]] = field(default_factory=lambda: [tool("echo"), tool("streamed")])
    tool_lists: int = 0
    listed: anyio.Event = field(default_factory=anyio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _unsolicited: Any = None

    def __post_init__(self) -> None:
        self._push, self._unsolicited = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/mcp", self.endpoint, methods=["GET", "POST", "DELETE"])])

    def forget_sessions(self) -> None:
        """As a restarted server would: every session id it handed out is now unknown (404)."""
        self.expired |= self.sessions
        self.sessions.clear()

    def announce_tool(self, name: str) -> None:
        self.tools.append(tool(name))
        self.listed = anyio.Event()
        self._push.send_nowait({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})

    def methods(self) -> list[str]:
        return [message.get("method", "<response>") for _, message in self.received]

    async def endpoint(self, request: Request) -> Response:
        if self.require_token is not None and request.headers.get("authorization") != f"Bearer {self.require_token}":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        if request.method == "DELETE":
            self.deleted.append(request.headers.get("mcp-session-id", ""))
            return Response(status_code=200)
        if request.method == "GET":
            return self.get_stream(request)
        message = json.loads(await request.body())
        self.received.append((dict(request.headers), message))
        method = message.get("method")
        if method == "initialize":
            self.initializes.append(message["params"])
            session = f"session-{next(self._ids)}"
            self.sessions.add(session)
            body = ok(message["id"], initialize_result(message["params"], "session-server"))
            return JSONResponse(body, headers={"Mcp-Session-Id": session})
        if request.headers.get("mcp-session-id") not in self.sessions:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": "Session not found"}},
                status_code=404,
            )
        if method == "notifications/cancelled":
            self.cancelled.set()
        if "id" not in message or "method" not in message:
            return Response(status_code=202)
        return await self.answer(message)

    async def answer(self, message: dict[str, Any]) -> Response:
        method, request_id = message["method"], message["id"]
        if method == "tools/list":
            self.tool_lists += 1
            self.listed.set()
            return JSONResponse(ok(request_id, {"tools": self.tools}))
        if method != "tools/call":
            return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "no"}})
        name = message["params"]["name"]
        arguments = message["params"].get("arguments") or {}
        if name == "explode":
            return Response("upstream database is on fire", status_code=500, media_type="text/plain")
        if name == "garble":
            return Response("<html>not json</html>", status_code=200, media_type="application/json")
        if name == "garble_sse":
            return StreamingResponse(iter([sse_event("not json at all")]), media_type="text/event-stream")
        if name == "wait":
            return StreamingResponse(self.wait_forever(message), media_type="text/event-stream")
        if name == "streamed":
            token = (message["params"].get("_meta") or {}).get("progressToken")
            events = []
            if token is not None:
                progress = {"progressToken": token, "progress": 1, "total": 2}
                events.append(sse_event({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress}))
            events.append(sse_event(ok(request_id, text_result(f"streamed {arguments.get('text')}"))))
            return StreamingResponse(iter(events), media_type="text/event-stream")
        return JSONResponse(ok(request_id, text_result(f"echo {arguments.get('text')}")))

    async def wait_forever(self, message: dict[str, Any]) -> AsyncIterator[str]:
        token = message["params"]["_meta"]["progressToken"]
        progress = {"progressToken": token, "progress": 1}
        yield sse_event({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress})
        self.waiting.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.wait_abandoned.set()

    def get_stream(self, request: Request) -> Response:
        """First connection: one priming event with an id and a short retry, then it ends.

        Later connections (which must carry Last-Event-ID) stay open and carry announcements.
        """
        if not self.offer_get_stream:
            return Response(status_code=405)
        self.get_headers.append(dict(request.headers))
        if request.headers.get("mcp-session-id") not in self.sessions:
            return Response(status_code=404)
        first = len(self.get_headers) == 1
        if not first:
            self.resumed.set()

        async def events() -> AsyncIterator[str]:
            if first:
                yield sse_event("", event_id="prime-1", retry=20)
                return
            async for message in self._unsolicited:
                yield sse_event(message, event_id=f"n-{next(self._ids)}")

        return StreamingResponse(events(), media_type="text/event-stream")


@dataclass
class StatelessServer:
    """A 2026-07-28 streamable HTTP server that records routing headers and notices disconnects.

    `tools/call` of `slow` streams one progress notification, then waits until the client closes
    the stream (the stateless revision's cancellation); any other tool answers at once.
    """

    seen: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    slow_started: anyio.Event = field(default_factory=anyio.Event)
    slow_abandoned: anyio.Event = field(default_factory=anyio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/mcp", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> Response:
        message = json.loads(await request.body())
        self.seen.append((dict(request.headers), message))
        if "id" not in message:
            return Response(status_code=202)
        name = message["params"].get("name")
        if name != "slow":
            return JSONResponse(ok(message["id"], text_result(f"called {name}")))
        token = message["params"]["_meta"].get("progressToken")

        async def events() -> AsyncIterator[str]:
            progress = {"progressToken": token, "progress": 1, "total": None}
            yield sse_event({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress})
            self.slow_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                self.slow_abandoned.set()

        return StreamingResponse(events(), media_type="text/event-stream")


@dataclass
class LegacySseServer:
    """An MCP 2024-11-05 HTTP+SSE server: GET /sse names its POST endpoint, answers come on the stream.

    It writes CRLF line endings, comment lines and JSON split over several `data:` lines, as
    real servers do, so the client's event parsing is exercised end to end.
    """

    posts: list[dict[str, Any]] = field(default_factory=list)
    endpoint_data: str = "/messages?session_id=abc"
    _queues: dict[str, Any] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/sse", self.stream, methods=["GET"]), Route("/messages", self.message, methods=["POST"])]
        )

    async def stream(self, request: Request) -> Response:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self._queues["abc"] = send

        async def events() -> AsyncIterator[bytes]:
            yield b": welcome\r\n\r\n"
            yield f"event: endpoint\r\ndata: {self.endpoint_data}\r\n\r\n".encode()
            async with receive:
                async for message in receive:
                    pretty = json.dumps(message, indent=1)  # several lines: several `data:` fields
                    lines = "".join(f"data: {line}\r\n" for line in pretty.split("\n"))
                    yield f": keep-alive\r\nevent: message\r\n{lines}\r\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def message(self, request: Request) -> Response:
        queue = self._queues.get(request.query_params.get("session_id", ""))
        if queue is None:
            return Response("unknown session", status_code=404)
        message = json.loads(await request.body())
        self.posts.append(message)
        method, request_id = message.get("method"), message.get("id")
        if method == "initialize":
            result = initialize_result(message["params"], "legacy-sse-server") | {"protocolVersion": "2024-11-05"}
            queue.send_nowait(ok(request_id, result))
        elif method == "tools/list":
            queue.send_nowait(ok(request_id, {"tools": [tool("echo")]}))
        elif method == "tools/call":
            text = (message["params"].get("arguments") or {}).get("text")
            queue.send_nowait(ok(request_id, text_result(f"sse echo {text}")))
        elif request_id is not None and method is not None:
            queue.send_nowait({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "no"}})
        return Response("Accepted", status_code=202)
