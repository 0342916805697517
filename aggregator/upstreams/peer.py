"""The hub's JSON-RPC client side of one upstream session, over any `Channel`.

It correlates responses to requests, routes progress by token, forwards cancellation when a
caller gives up (timeout or its own cancellation), and hands server-initiated requests and
notifications to the hub together with the in-flight call they most likely belong to.

Attribution of server-initiated messages: stdio carries no link between a server's sampling
request (or log message) and the tool call that caused it. The hub attributes it to the only
in-flight call when there is one, else to the most recently started call; see
docs/architecture.md ("Who gets a child's sampling request").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.channel import Channel, ChannelClosed, PushChannel

_log = logging.getLogger("toolmux.upstream")

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


class CallRoute(Protocol):
    """The front-side call an upstream request belongs to (implemented by the dispatch layer)."""

    async def relay_request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Ask the front client (sampling, elicitation, roots); raises RpcError when it cannot."""
        ...

    async def relay_notification(self, method: str, params: dict[str, Any] | None) -> None:
        """Deliver a request-related notification (e.g. a log message) to the front client."""
        ...


NotificationHandler = Callable[[str, dict[str, Any] | None], Awaitable[None]]
OrphanRequestHandler = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


@dataclass(eq=False)
class _Pending:
    method: str
    route: CallRoute | None
    on_progress: ProgressFn | None
    progress_token: str | None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    response: dict[str, Any] | None = None
    closed_reason: str | None = None
    timed_out: bool = False
    progress_backlog: deque[tuple[Any, Any, Any]] = field(default_factory=deque)
    draining: bool = False
    drained: asyncio.Event | None = None

    def expire(self) -> None:
        if not self.done.is_set():
            self.timed_out = True
            self.done.set()


class RpcPeer:
    def __init__(
        self,
        channel: Channel,
        name: str,
        *,
        on_notification: NotificationHandler,
        on_orphan_request: OrphanRequestHandler | None = None,
    ) -> None:
        self.channel = channel
        self.name = name
        self._on_notification = on_notification
        self._on_orphan_request = on_orphan_request
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._by_token: dict[str, _Pending] = {}
        self._tg: TaskGroup | None = None
        self.closed_reason: str | None = None

    # --- outbound -------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float,
        route: CallRoute | None = None,
        on_progress: ProgressFn | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a request and return its result; error responses raise RpcError. `headers` reach an
        HTTP transport (Mcp-Param-* of the stateless revision); other transports ignore them."""
        if self.closed_reason is not None:
            raise ChannelClosed(self.closed_reason)
        request_id = next(self._ids)
        token = None
        if on_progress is not None:
            token = f"tm-{request_id}"
            params = dict(params or {})
            params["_meta"] = {**(params.get("_meta") or {}), "progressToken": token}
        pending = _Pending(method, route, on_progress, token)
        self._pending[request_id] = pending
        if token is not None:
            self._by_token[token] = pending
        written = False
        # A loop timer rather than a cancel scope per call: calls are the hot path, and the timer
        # costs a heap entry where a scope costs several task lookups on entry and exit.
        timer = asyncio.get_running_loop().call_later(timeout, pending.expire)
        try:
            await self.channel.send(jsonrpc.request(request_id, method, params), headers=headers)
            written = True
            await pending.done.wait()
            if pending.draining and pending.drained is not None:
                # Progress the server sent before its result reaches the caller before the result.
                await pending.drained.wait()
            if pending.timed_out:
                await self._cancel_upstream(request_id, "timed out")
                raise RpcError(
                    jsonrpc.UPSTREAM_TIMEOUT, f"server {self.name!r} did not answer {method} within {timeout:g} s"
                )
        except anyio.get_cancelled_exc_class():
            if written and not pending.done.is_set():
                await self._cancel_upstream(request_id, "cancelled by the client")
            raise
        finally:
            timer.cancel()
            self._pending.pop(request_id, None)
            if token is not None:
                self._by_token.pop(token, None)
        if pending.closed_reason is not None:
            raise ChannelClosed(pending.closed_reason)
        response = pending.response
        assert response is not None
        if "error" in response:
            err = response["error"] if isinstance(response["error"], dict) else {}
            raise RpcError(
                int(err.get("code", jsonrpc.INTERNAL_ERROR)), str(err.get("message", "error")), err.get("data")
            )
        result = response.get("result")
        return result if isinstance(result, dict) else {}

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.channel.send(jsonrpc.notification(method, params))

    async def _cancel_upstream(self, request_id: int, reason: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2), contextlib.suppress(ChannelClosed):
            await self.channel.send(
                jsonrpc.notification("notifications/cancelled", {"requestId": request_id, "reason": reason})
            )

    # --- inbound --------------------------------------------------------------------------------
    async def run(self) -> str:
        """Read until the channel closes; return why it closed. In-flight calls fail with that reason."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if isinstance(self.channel, PushChannel):
                    self.channel.attach(self._dispatch)
                try:
                    while True:
                        message = await self.channel.receive()
                        self._dispatch(message)
                except ChannelClosed as exc:
                    self.closed_reason = exc.reason
                tg.cancel_scope.cancel()
        finally:
            self.closed_reason = self.closed_reason or f"connection to {self.name!r} closed"
            for pending in list(self._pending.values()):
                pending.closed_reason = self.closed_reason
                pending.done.set()
        return self.closed_reason

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" not in message:
            request_id = message.get("id")
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
            if pending is None and isinstance(request_id, str) and request_id.isdigit():
                pending = self._pending.get(int(request_id))
            if pending is not None:
                pending.response = message
                pending.done.set()
            return
        method = message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        assert self._tg is not None
        if "id" in message:
            self._tg.start_soon(self._serve_request, message["id"], method, params)
        elif method == "notifications/progress" and params is not None:
            target = self._by_token.get(str(params.get("progressToken")))
            if target is not None and target.on_progress is not None:
                target.progress_backlog.append((params.get("progress", 0), params.get("total"), params.get("message")))
                if not target.draining:
                    # One drainer per call, not a task per notification: cheaper for a stream of
                    # chunks, and the client sees them in the order the server sent them.
                    target.draining = True
                    target.drained = asyncio.Event()
                    self._tg.start_soon(self._drain_progress, target)
        elif method == "notifications/message":
            route = self._current_route()
            if route is not None:
                self._tg.start_soon(self._guarded, route.relay_notification, method, params)
            else:
                self._tg.start_soon(self._guarded, self._on_notification, method, params)
        else:
            self._tg.start_soon(self._guarded, self._on_notification, method, params)

    async def _drain_progress(self, pending: _Pending) -> None:
        assert pending.on_progress is not None
        try:
            while pending.progress_backlog:
                progress, total, message = pending.progress_backlog.popleft()
                await pending.on_progress(progress, total, message)
        except Exception as exc:
            # The caller went away (its stream closed): drop its progress, keep the session.
            pending.progress_backlog.clear()
            _log.debug("%s: progress could not be delivered: %r", self.name, exc)
        finally:
            pending.draining = False
            if pending.drained is not None:
                pending.drained.set()

    async def _guarded(self, deliver: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Deliver a notification; a client that went away must not take the upstream session down."""
        try:
            await deliver(*args)
        except Exception as exc:
            _log.debug("%s: a notification could not be delivered: %r", self.name, exc)

    def _current_route(self) -> CallRoute | None:
        routed = [p.route for p in self._pending.values() if p.route is not None]
        return routed[-1] if routed else None

    async def _serve_request(self, request_id: Any, method: str, params: dict[str, Any] | None) -> None:
        try:
            if method == "ping":
                result: dict[str, Any] = {}
            else:
                route = self._current_route()
                if route is not None:
                    result = await route.relay_request(method, params)
                elif self._on_orphan_request is not None:
                    result = await self._on_orphan_request(method, params)
                else:
                    raise RpcError(
                        jsonrpc.METHOD_NOT_FOUND, f"{method} cannot be answered: no client call is in progress"
                    )
            reply = jsonrpc.result(request_id, result)
        except RpcError as exc:
            reply = jsonrpc.error_from(request_id, exc)
        except Exception:
            _log.exception("%s: relaying %s failed", self.name, method)
            reply = jsonrpc.error(request_id, jsonrpc.INTERNAL_ERROR, f"the hub could not relay {method}")
        with contextlib.suppress(ChannelClosed):
            await self.channel.send(reply)
