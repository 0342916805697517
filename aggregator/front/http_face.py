"""The hub's MCP endpoint over streamable HTTP (`/mcp` and `/mcp/`), both protocol eras.

Legacy (2025-03-26 … 2025-11-25): `initialize` opens a session (`Mcp-Session-Id`); each POST
carries one message; a request is answered with JSON, or with an SSE stream when progress, logs
or a server-to-client request come before the result; GET opens the session's stream for
unsolicited messages; DELETE ends the session.

Stateless (2026-07-28): every request carries its envelope in `_meta` and mirrors method and
name in headers; no sessions; server-to-client requests become `input_required` results; closing
a response stream cancels its request; `subscriptions/listen` is a long-lived response stream.

Raw ASGI on purpose: this is the hot path, and a framework's per-request machinery costs more
than the whole forwarding work (see bench/hub_overhead.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from aggregator import dispatch
from aggregator.front.core import MRTR_METHODS, REMOVED_IN_MODERN, McpCore
from aggregator.front.envelope import modern_session
from aggregator.front.forward import FORWARDED_HEADER, SessionForwarder
from aggregator.front.http_stream import (
    HEARTBEAT_SECONDS,
    RESUME_TTL,
    BodyTooLarge,
    Receive,
    ResponseStream,
    Send,
    header_map,
    read_body,
    send_body,
    send_rpc_error,
    start_sse,
)
from aggregator.front.mrtr import InputBroker
from aggregator.front.session import FrontSession
from aggregator.ids import new_id
from aggregator.principal import Principal
from aggregator.protocol import headers as mcp_headers
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import LEGACY_VERSIONS, MODERN_VERSIONS, envelope_version, modern_meta
from aggregator.protocol.jsonrpc import RpcError

_log = logging.getLogger("toolmux.http")


MODERN_METHODS = {
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
}


def modern_status(response: dict[str, Any] | None) -> int:
    """The HTTP status a stateless request's JSON response carries (errors are not all 200)."""
    if response is None or "error" not in response:
        return 200
    code = response["error"].get("code")
    if code == jsonrpc.METHOD_NOT_FOUND:
        return 404
    if code in (
        jsonrpc.INVALID_PARAMS,
        jsonrpc.HEADER_MISMATCH,
        jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        jsonrpc.MISSING_CLIENT_CAPABILITY,
        jsonrpc.INVALID_REQUEST,
        jsonrpc.PARSE_ERROR,
    ):
        return 400
    return 200


class McpHttpEndpoint:
    """ASGI app for the MCP endpoint. `authenticate` maps a request to a principal (None: refuse)."""

    def __init__(
        self,
        core: McpCore,
        authenticate: Callable[[dict[str, str], dict[str, Any]], Principal | None],
        *,
        max_body: int,
        body_timeout: float = 30.0,
        idle_timeout: float,
        max_sessions: int,
    ) -> None:
        self.core = core
        self.authenticate = authenticate
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[str, FrontSession] = {}
        self._get_streams: dict[str, ResponseStream] = {}
        # Streams a client dropped mid-response: {resume id: (session id, stream, created)}.
        self._resumable: dict[str, tuple[str, ResponseStream, float]] = {}
        # Set when replicas share state: requests for sessions other replicas own go there.
        self.forwarder: SessionForwarder | None = None

    # --- session housekeeping ---------------------------------------------------------------------
    def expire_idle(self) -> None:
        now = time.monotonic()
        for resume_id, (_sid, stream, created) in list(self._resumable.items()):
            if stream.done and now - created > RESUME_TTL:
                del self._resumable[resume_id]
        for sid, session in list(self.sessions.items()):
            busy = session.in_flight or sid in self._get_streams
            if not busy and now - session.last_seen > self.idle_timeout:
                self._end_session(sid)

    def _end_session(self, sid: str) -> None:
        session = self.sessions.pop(sid, None)
        if session is not None:
            session.close()
            self.core.front.sessions.discard(session)
            if self.forwarder is not None:
                self.core.hub.task_group.start_soon(self.forwarder.release, sid)

    def _make_room(self) -> bool:
        if len(self.sessions) < self.max_sessions:
            return True
        self.expire_idle()
        idle = [
            (s.last_seen, sid) for sid, s in self.sessions.items() if not s.in_flight and sid not in self._get_streams
        ]
        if len(self.sessions) >= self.max_sessions and idle:
            self._end_session(min(idle)[1])
        return len(self.sessions) < self.max_sessions

    # --- ASGI ---------------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        # Parsed once per request by the app when it routes here.
        headers = scope.get("toolmux.headers") or header_map(scope)
        principal = self.authenticate(headers, scope)
        if principal is None:
            await send_rpc_error(
                send,
                401,
                None,
                jsonrpc.UNAUTHORIZED,
                "missing or invalid API key: send 'Authorization: Bearer <key>' (or ?api_key=)",
                headers=[(b"www-authenticate", b'Bearer realm="toolmux"')],
            )
            return
        sid = headers.get("mcp-session-id")
        if self.forwarder is not None and sid and sid not in self.sessions and FORWARDED_HEADER not in headers:
            owner = await self.forwarder.owner_url(sid)
            if owner is not None:
                if not await self.forwarder.forward(scope, receive, send, owner):
                    await self.forwarder.release(sid)
                    await send_rpc_error(
                        send, 404, None, jsonrpc.INVALID_REQUEST, "session not found: its replica is gone"
                    )
                return
        method = scope["method"]
        if method == "POST":
            await self.post(scope, receive, send, headers, principal)
        elif method == "GET":
            await self.get(receive, send, headers, principal)
        elif method == "DELETE":
            sid = headers.get("mcp-session-id")
            session = self.sessions.get(sid or "")
            if session is None or session.principal.view != principal.view:
                await send_rpc_error(send, 404, None, jsonrpc.INVALID_REQUEST, "session not found")
                return
            self._end_session(session.id)
            await send_body(send, 200, b"")
        else:
            await send_body(
                send,
                405,
                jsonrpc.dumps(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, f"method {method} not allowed")),
                [(b"allow", b"GET, POST, DELETE")],
            )

    async def post(
        self, scope: dict[str, Any], receive: Receive, send: Send, headers: dict[str, str], principal: Principal
    ) -> None:
        try:
            body = await read_body(receive, self.max_body, self.body_timeout)
        except BodyTooLarge:
            await send_rpc_error(
                send, 413, None, jsonrpc.INVALID_REQUEST, f"request body exceeds the limit of {self.max_body} bytes"
            )
            return
        except anyio.EndOfStream:
            return
        except TimeoutError:
            await send_rpc_error(send, 408, None, jsonrpc.INVALID_REQUEST, "the request body did not arrive in time")
            return
        try:
            message = jsonrpc.loads(body)
        except ValueError:
            await send_rpc_error(send, 400, None, jsonrpc.PARSE_ERROR, "Parse error: the body is not valid JSON")
            return
        problem = jsonrpc.check_message(message)
        if problem is not None:
            rid = message.get("id") if isinstance(message, dict) and jsonrpc.valid_id(message.get("id")) else None
            await send_rpc_error(send, 400, rid, jsonrpc.INVALID_REQUEST, f"Invalid request: {problem}")
            return
        sid = headers.get("mcp-session-id")
        if jsonrpc.is_response(message):
            session = self.sessions.get(sid or "")
            if session is None or session.principal.view != principal.view:
                await send_rpc_error(send, 404, None, jsonrpc.INVALID_REQUEST, "session not found")
                return
            session.deliver_response(message)
            await send_body(send, 202, b"")
            return
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        version_header = headers.get("mcp-protocol-version")
        is_modern = sid is None and (
            modern_meta(params) is not None
            or version_header in MODERN_VERSIONS
            or message["method"] == "server/discover"
        )
        if is_modern and self.forwarder is not None and message["method"] in MRTR_METHODS:
            token = InputBroker.token_of((params or {}).get("requestState"))
            if token and not self.core.front.broker.holds(token) and FORWARDED_HEADER not in headers:
                owner = await self.forwarder.parked_owner_url(token)
                if owner is not None and await self.forwarder.forward(scope, receive, send, owner, read=body):
                    return
        if is_modern:
            await self.post_modern(receive, send, headers, principal, message, params)
        elif message["method"] == "initialize" and sid is None:
            await self.post_initialize(send, principal, message)
        else:
            await self.post_legacy(receive, send, headers, principal, message, sid)

    async def post_initialize(self, send: Send, principal: Principal, message: dict[str, Any]) -> None:
        if not self._make_room():
            await send_rpc_error(
                send,
                503,
                message.get("id"),
                jsonrpc.INTERNAL_ERROR,
                "too many open sessions",
                headers=[(b"retry-after", b"5")],
            )
            return
        session = FrontSession(principal=principal, protocol_version=LEGACY_VERSIONS[-1])
        response = await self.core.handle(session, message, _no_emit)
        if response is not None and "result" in response:
            self.sessions[session.id] = session
            self.core.front.sessions.add(session)
            if self.forwarder is not None:  # claimed before the client can send its next request elsewhere
                await self.forwarder.claim(session.id)
            await send_body(send, 200, jsonrpc.dumps(response), [(b"mcp-session-id", session.id.encode())])
        else:
            await send_body(send, 400, jsonrpc.dumps(response))

    async def post_legacy(
        self,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        principal: Principal,
        message: dict[str, Any],
        sid: str | None,
    ) -> None:
        request_id = message.get("id")
        if sid is None:
            await send_rpc_error(
                send,
                400,
                request_id,
                jsonrpc.INVALID_REQUEST,
                "Bad Request: the Mcp-Session-Id header is required (send initialize first)",
            )
            return
        session = self.sessions.get(sid)
        if session is None or session.principal.view != principal.view:
            await send_rpc_error(
                send,
                404,
                request_id,
                jsonrpc.INVALID_REQUEST,
                "session not found: it ended or expired; initialize a new one",
            )
            return
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in LEGACY_VERSIONS:
            await send_rpc_error(
                send,
                400,
                request_id,
                jsonrpc.INVALID_REQUEST,
                f"Bad Request: unsupported MCP-Protocol-Version {version!r} for this session",
            )
            return
        session.last_seen = time.monotonic()
        if "id" not in message:
            await self.core.handle(session, message, _no_emit)
            await send_body(send, 202, b"")
            return
        resume_id = new_id()
        stream = ResponseStream(send, [], resume_id=resume_id)
        self._resumable[resume_id] = (session.id, stream, time.monotonic())
        # Legacy semantics: a dropped connection is not a cancellation (the client cancels with
        # notifications/cancelled); events collect until it resumes with Last-Event-ID.
        try:
            await self._respond_legacy(receive, stream, session, message)
        finally:
            if not stream.client_gone:
                self._resumable.pop(resume_id, None)
        session.last_seen = time.monotonic()

    async def post_modern(
        self,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        principal: Principal,
        message: dict[str, Any],
        params: dict[str, Any] | None,
    ) -> None:
        request_id = message.get("id")
        method = message["method"]
        try:
            # Order matters: an incomplete envelope, then header/body disagreement, then the version.
            mcp_headers.validate_version(headers, envelope_version(params))
            session = modern_session(principal, params)
            # A tools/call is resolved here, once: its header rule is checked now, and the same
            # resolution travels on to dispatch. Out of scope resolves to nothing, like unknown.
            tool = None
            name = (params or {}).get("name")
            if method == "tools/call" and isinstance(name, str):
                tool = dispatch.resolve_tool(self.core.hub, principal, name)
            mcp_headers.validate(headers, message, tool.mcp_headers if tool is not None else None)
        except RpcError as exc:
            await send_body(send, 400, jsonrpc.dumps(jsonrpc.error_from(request_id, exc)))
            return
        if "id" not in message:
            await send_body(send, 202, b"")
            return
        if method in REMOVED_IN_MODERN or method not in MODERN_METHODS:
            await send_rpc_error(send, 404, request_id, jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")
            return
        stream = ResponseStream(send, [])
        await self._respond(
            receive,
            stream,
            session,
            message,
            cancel_on_disconnect=True,
            heartbeat=method == "subscriptions/listen",
            modern=True,
            tool=tool,
        )

    async def _respond_legacy(
        self, receive: Receive, stream: ResponseStream, session: FrontSession, message: dict[str, Any]
    ) -> None:
        """A session request: a dropped connection is not a cancellation, so nothing watches for one
        until the response turns into an SSE stream (then events are kept for a resuming client)."""

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.client_gone = True

        stream.on_sse = lambda: self.core.hub.task_group.start_soon(watch_disconnect)
        response = await self.core.handle(session, message, stream.emit)
        await stream.finish(response)

    async def _respond(
        self,
        receive: Receive,
        stream: ResponseStream,
        session: FrontSession,
        message: dict[str, Any],
        *,
        cancel_on_disconnect: bool,
        heartbeat: bool = False,
        modern: bool = False,
        tool: dispatch.ResolvedTool | None = None,
    ) -> None:
        handler_scope = anyio.CancelScope()

        async def watch_disconnect() -> None:
            while True:
                event = await receive()
                if event["type"] == "http.disconnect":
                    stream.client_gone = True
                    # After a complete response, uvicorn reports the exchange over the same way:
                    # nothing left to cancel (and anyio's cancel formats the task's repr, ~5% of a call).
                    if cancel_on_disconnect and not stream.done:
                        handler_scope.cancel()
                    return

        async def beat() -> None:
            while True:
                await anyio.sleep(HEARTBEAT_SECONDS)
                await stream.heartbeat()

        # Plain loop tasks rather than a task group: the group cost more than the rest of a small
        # request, and neither helper needs waiting for (each ends with the exchange or is cancelled).
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(watch_disconnect())]
        if heartbeat:
            helpers.append(loop.create_task(beat()))
        try:
            response: dict[str, Any] | None = None
            with handler_scope:
                response = await self.core.handle(session, message, stream.emit, tool)
            if heartbeat:
                helpers[1].cancel()
            if not handler_scope.cancelled_caught:
                await stream.finish(response, modern_status(response) if modern else 200)
        finally:
            for task in helpers:
                task.cancel()

    async def get(self, receive: Receive, send: Send, headers: dict[str, str], principal: Principal) -> None:
        """The legacy session's stream for messages not tied to a request."""
        sid = headers.get("mcp-session-id")
        if sid is None:
            await send_rpc_error(
                send,
                405,
                None,
                jsonrpc.INVALID_REQUEST,
                "GET needs an Mcp-Session-Id (stateless clients use subscriptions/listen)",
                headers=[(b"allow", b"POST, DELETE")],
            )
            return
        session = self.sessions.get(sid)
        if session is None or session.principal.view != principal.view:
            await send_rpc_error(send, 404, None, jsonrpc.INVALID_REQUEST, "session not found")
            return
        if "text/event-stream" not in headers.get("accept", "text/event-stream"):
            await send_rpc_error(send, 406, None, jsonrpc.INVALID_REQUEST, "GET needs Accept: text/event-stream")
            return
        last_event = headers.get("last-event-id")
        if last_event:
            await self.resume(receive, send, session, last_event)
            return
        if sid in self._get_streams:
            await send_rpc_error(send, 409, None, jsonrpc.INVALID_REQUEST, "this session already has a GET stream")
            return
        stream = ResponseStream(send, [])
        self._get_streams[sid] = stream
        session.unsolicited = stream.emit
        try:
            async with anyio.create_task_group() as tg:

                async def beat() -> None:
                    # Opening the stream sends a comment at once, so the client sees it is live.
                    await stream.heartbeat()
                    while True:
                        await anyio.sleep(HEARTBEAT_SECONDS)
                        await stream.heartbeat()

                stream.sse = True
                await start_sse(send)
                tg.start_soon(beat)
                while (await receive())["type"] != "http.disconnect":
                    pass
                stream.client_gone = True
                tg.cancel_scope.cancel()
        finally:
            if self._get_streams.get(sid) is stream:
                del self._get_streams[sid]
                session.unsolicited = None
            with anyio.CancelScope(shield=True):
                await stream.finish(None)

    async def resume(self, receive: Receive, send: Send, session: FrontSession, last_event: str) -> None:
        """GET with Last-Event-ID: pick a dropped response stream up where the client lost it."""
        resume_id, _, seq = last_event.rpartition("-")
        entry = self._resumable.get(resume_id)
        if entry is None or entry[0] != session.id or not seq.isdigit():
            await send_rpc_error(
                send,
                404,
                None,
                jsonrpc.INVALID_REQUEST,
                "nothing to resume for that Last-Event-ID (unknown or expired)",
            )
            return
        stream = entry[1]
        await stream.resume(send, int(seq))
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                stream.client_gone = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await stream.finished.wait()
            tg.cancel_scope.cancel()
        if not stream.client_gone:
            self._resumable.pop(resume_id, None)


async def _no_emit(message: dict[str, Any]) -> None:
    raise anyio.ClosedResourceError


__all__ = ["MRTR_METHODS", "McpHttpEndpoint"]
