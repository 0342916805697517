"""A connected client (a front session) and one of its in-flight requests (a front call)."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_CLIENT_CAPABILITIES, META_LOG_LEVEL, log_rank
from aggregator.protocol.jsonrpc import RpcError

_log = logging.getLogger("toolmux.front")

Emit = Callable[[dict[str, Any]], Awaitable[None]]
CLIENT_REQUEST_TIMEOUT = 600.0

# The client capability a server-initiated request needs.
CAPABILITY_FOR_METHOD = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


class MissingClientCapability(RpcError):
    """The client did not declare a capability the call needs (2026-07-28 error -32021)."""

    def __init__(self, capability: str) -> None:
        super().__init__(
            jsonrpc.MISSING_CLIENT_CAPABILITY,
            f"this call needs the client capability '{capability}', which the request did not declare",
            {"requiredCapabilities": {capability: {}}},
        )
        self.capability = capability


@dataclass(eq=False)
class FrontSession:
    """One client connection: a legacy session (stdio process, HTTP session id) or a modern request."""

    principal: Principal
    protocol_version: str
    modern: bool = False
    id: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    client_info: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    initialized: bool = False
    subscriptions: set[str] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)
    # Where messages not tied to a request go (stdio: stdout; HTTP: the GET stream, if open).
    unsolicited: Emit | None = None
    in_flight: dict[Any, anyio.CancelScope] = field(default_factory=dict)
    _client_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _awaiting: dict[str, tuple[anyio.Event, list[dict[str, Any]]]] = field(default_factory=dict)
    closed: bool = False

    def has_capability(self, name: str) -> bool:
        return name in self.client_capabilities

    async def send_unsolicited(self, message: dict[str, Any]) -> bool:
        """Deliver a message outside any request; False when this session has nowhere to put it."""
        sink = self.unsolicited
        if sink is None or self.closed:
            return False
        try:
            await sink(message)
        except Exception:
            _log.debug("session %s: dropping an unsolicited message", self.id, exc_info=True)
            return False
        return True

    async def request_client(self, method: str, params: dict[str, Any] | None, emit: Emit) -> dict[str, Any]:
        """Send a server-to-client request on `emit` and wait for the client's response."""
        request_id = f"toolmux-{next(self._client_ids)}"
        done = anyio.Event()
        slot: list[dict[str, Any]] = []
        self._awaiting[request_id] = (done, slot)
        try:
            await emit(jsonrpc.request(request_id, method, params))
            with anyio.fail_after(CLIENT_REQUEST_TIMEOUT):
                await done.wait()
        except TimeoutError:
            raise RpcError(jsonrpc.UPSTREAM_TIMEOUT, f"the client did not answer {method}") from None
        finally:
            self._awaiting.pop(request_id, None)
        response = slot[0]
        if "error" in response:
            err = response["error"] if isinstance(response["error"], dict) else {}
            raise RpcError(
                int(err.get("code", jsonrpc.INTERNAL_ERROR)), str(err.get("message", "client error")), err.get("data")
            )
        result = response.get("result")
        return result if isinstance(result, dict) else {}

    def deliver_response(self, message: dict[str, Any]) -> bool:
        """A client's response to one of our requests; False if we were not waiting for it."""
        waiting = self._awaiting.get(str(message.get("id")))
        if waiting is None:
            return False
        done, slot = waiting
        slot.append(message)
        done.set()
        return True

    def cancel(self, request_id: Any) -> None:
        scope = self.in_flight.get(request_id)
        if scope is not None:
            scope.cancel()

    def close(self) -> None:
        self.closed = True
        for scope in list(self.in_flight.values()):
            scope.cancel()


@dataclass(eq=False)
class FrontCall:
    """One in-flight client request: where its progress, logs and client requests go."""

    session: FrontSession
    request_id: Any
    method: str
    emit: Emit
    progress_token: str | int | None = None
    request_log_level: str | None = None
    # Set for stateless (2026-07-28) requests: server-to-client requests become input_required.
    input_broker: Any = None
    # A failure that must become this request's error even if the upstream recovers from it.
    fatal: RpcError | None = None

    @classmethod
    def for_request(cls, session: FrontSession, message: dict[str, Any], emit: Emit) -> FrontCall:
        params = message.get("params") or {}
        meta = jsonrpc.obj(params.get("_meta"))
        token = meta.get("progressToken")
        level = meta.get(META_LOG_LEVEL)
        return cls(
            session,
            message.get("id"),
            message.get("method", ""),
            emit,
            token if isinstance(token, str | int) and not isinstance(token, bool) else None,
            level if isinstance(level, str) else None,
        )

    # ClientRoute: what dispatch needs to know of the client.
    @property
    def stateless(self) -> bool:
        return self.session.modern

    def upstream_envelope(self) -> dict[str, Any]:
        session = self.session
        envelope: dict[str, Any] = {META_CLIENT_CAPABILITIES: session.client_capabilities}
        # A legacy client that never set a level hears every log line, as a legacy server would send it.
        level = self.request_log_level if session.modern else (session.log_level or "debug")
        if level:
            envelope[META_LOG_LEVEL] = level
        return envelope

    @property
    def wants_progress(self) -> bool:
        return self.progress_token is not None

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.emit(jsonrpc.notification("notifications/progress", params))

    # CallRoute: what an upstream's server-initiated messages do during this call.
    async def relay_notification(self, method: str, params: dict[str, Any] | None) -> None:
        if method == "notifications/message":
            level = (params or {}).get("level", "info")
            if self.session.modern:
                # 2026-07-28: logs only for requests that opted in, at or above the asked level.
                if self.request_log_level is None or log_rank(level) < log_rank(self.request_log_level):
                    return
            elif self.session.log_level is not None and log_rank(level) < log_rank(self.session.log_level):
                return
        await self.emit(jsonrpc.notification(method, params))

    async def relay_request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        capability = CAPABILITY_FOR_METHOD.get(method)
        if capability is not None and not self.session.has_capability(capability):
            if self.session.modern:
                self.fatal = MissingClientCapability(capability)
                raise self.fatal
            raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"the client does not support {method}")
        if self.input_broker is not None:
            result: dict[str, Any] = await self.input_broker.ask(method, params)
            return result
        return await self.session.request_client(method, params, self.emit)
