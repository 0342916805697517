"""The MCP protocol as the hub serves it, independent of transport.

`McpCore.handle()` takes one parsed message from a front session and returns the response
message (or None for notifications). Request-related messages (progress, logs, server-to-client
requests on legacy sessions) go out through the `emit` callable the transport supplies.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from aggregator import dispatch, lazy
from aggregator.front.mrtr import ParkedCall, check_input_responses
from aggregator.front.registry import FrontRegistry, Listener
from aggregator.front.session import Emit, FrontCall, FrontSession
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import (
    ALL_VERSIONS,
    LATEST_LEGACY,
    LEGACY_VERSIONS,
    LOG_LEVELS,
    META_SERVER_INFO,
    META_SUBSCRIPTION_ID,
)
from aggregator.protocol.jsonrpc import RpcError

if TYPE_CHECKING:
    from aggregator.hub import Hub
    from aggregator.principal import Principal
    from aggregator.upstreams.upstream import Upstream

_log = logging.getLogger("toolmux.front")

LIST_TTL_MS = 30_000
# Methods the stateless revision removed: a modern request for them is "method not found".
REMOVED_IN_MODERN = {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
MRTR_METHODS = {"tools/call", "prompts/get", "resources/read"}
CACHEABLE = {
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
}

Operation = Callable[[FrontCall], Awaitable[dict[str, Any]]]


class McpCore:
    """The MCP protocol over the hub. It owns the front layer's clients (`front`) and registers
    them with the hub, which tells them of catalog changes."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.front = FrontRegistry(hub.catalog.view_changed)
        hub.add_audience(self.front)

    def capabilities(self) -> dict[str, Any]:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "logging": {},
            "completions": {},
        }

    # --- entry point ----------------------------------------------------------------------------------
    async def handle(
        self, session: FrontSession, message: dict[str, Any], emit: Emit, tool: dispatch.ResolvedTool | None = None
    ) -> dict[str, Any] | None:
        """Serve one message; `tool` is the tools/call target when the transport already resolved it."""
        method = message["method"]
        params = jsonrpc.obj(message.get("params"))
        if "id" not in message:
            await self.notification(session, method, params)
            return None
        request_id = message["id"]
        try:
            result = await self.request(session, message, params, emit, tool)
        except RpcError as exc:
            return jsonrpc.error_from(request_id, exc)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            reference = uuid.uuid4().hex[:12]
            _log.exception("internal error serving %s (reference %s)", method, reference)
            return jsonrpc.error(request_id, jsonrpc.INTERNAL_ERROR, f"internal error (reference {reference})")
        result = self._modern_envelope(method, result) if session.modern else _without_server_info(result)
        return jsonrpc.result(request_id, result)

    def _modern_envelope(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """A stateless response: result type, caching hints, and the hub's identity (which replaces
        whatever identity an upstream stamped: the client is talking to the hub)."""
        result = dict(result)
        result.setdefault("resultType", "complete")
        if result["resultType"] == "complete" and method in CACHEABLE:
            result.setdefault("ttlMs", 0 if method == "resources/read" else LIST_TTL_MS)
            result.setdefault("cacheScope", "private")
        meta = jsonrpc.obj(result.get("_meta"))
        result["_meta"] = {**meta, META_SERVER_INFO: self.hub.server_info()}
        return result

    async def notification(self, session: FrontSession, method: str, params: dict[str, Any]) -> None:
        if method == "notifications/initialized":
            session.initialized = True
        elif method == "notifications/cancelled":
            # A notification gets no answer, so a requestId that cannot name a request (a list, an
            # object) is dropped, as one naming no request in flight is.
            request_id = params.get("requestId")
            if jsonrpc.valid_id(request_id):
                session.cancel(request_id)
        else:
            _log.debug("ignoring client notification %s", method)

    # --- requests ---------------------------------------------------------------------------------------
    async def request(
        self,
        session: FrontSession,
        message: dict[str, Any],
        params: dict[str, Any],
        emit: Emit,
        tool: dispatch.ResolvedTool | None = None,
    ) -> dict[str, Any]:
        method = message["method"]
        hub = self.hub
        principal = session.principal
        if session.modern and method in REMOVED_IN_MODERN:
            raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method} (removed in 2026-07-28)")
        if method == "initialize":
            return self.initialize(session, params)
        if method == "ping":
            return {}
        if method == "server/discover":
            return {
                "supportedVersions": list(ALL_VERSIONS),
                "capabilities": self.capabilities(),
                "serverInfo": hub.server_info(),
                **({"instructions": i} if (i := hub.instructions(principal)) else {}),
            }
        if method == "tools/list":
            return {"tools": hub.catalog.tools_for(principal)}
        if method == "prompts/list":
            return {"prompts": hub.catalog.prompts_for(principal)}
        if method == "resources/list":
            return {"resources": hub.catalog.resources_for(principal)}
        if method == "resources/templates/list":
            return {"resourceTemplates": hub.catalog.templates_for(principal)}
        if method == "logging/setLevel":
            level = params.get("level")
            if level not in LOG_LEVELS:
                raise RpcError(jsonrpc.INVALID_PARAMS, f"level must be one of {', '.join(LOG_LEVELS)}")
            session.log_level = level
            return {}
        if method in ("resources/subscribe", "resources/unsubscribe"):
            return await self.subscribe(session, params, method == "resources/subscribe")
        if method == "completion/complete":
            return await self.complete(session, params)
        if method == "subscriptions/listen" and session.modern:
            return await self.listen(session, message, params, emit)
        if method in ("tools/call", "prompts/get", "resources/read"):
            return await self._interactive_request(session, message, params, emit, tool)
        raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _interactive_request(
        self,
        session: FrontSession,
        message: dict[str, Any],
        params: dict[str, Any],
        emit: Emit,
        tool: dispatch.ResolvedTool | None,
    ) -> dict[str, Any]:
        """tools/call, prompts/get, resources/read: the requests that may need the client's input."""
        hub, principal, method = self.hub, session.principal, message["method"]
        field = "uri" if method == "resources/read" else "name"
        target = params.get(field)
        if not isinstance(target, str):
            raise RpcError(jsonrpc.INVALID_PARAMS, f"{method}: '{field}' must be a string")
        if params.get("_meta") is not None and not isinstance(params["_meta"], dict):
            raise RpcError(jsonrpc.INVALID_PARAMS, f"{method}: '_meta' must be an object", {"field": "_meta"})
        upstream: Upstream | None = None
        if method == "tools/call":
            name, arguments = target, params.get("arguments")
            if principal.lazy and target in lazy.LAZY_NAMES:
                if target != lazy.CALL:
                    return self._lazy_answer(principal, target, arguments)
                # call_tool: the inner tool takes the very path a direct tools/call takes.
                name, arguments = lazy.call_target(arguments)
                if not isinstance(name, str):
                    raise RpcError(jsonrpc.INVALID_PARAMS, "call_tool: 'name' must be a string", {"field": "name"})
            resolved = tool if tool is not None and tool.name == name else dispatch.resolve_tool(hub, principal, name)
            if resolved is None:
                if principal.lazy:
                    raise lazy.unknown(hub.catalog.snapshot, principal, name)
                raise dispatch.unknown_tool(hub, name, principal)
            upstream = resolved.upstream

            async def op(call: FrontCall) -> dict[str, Any]:
                return await dispatch.call_tool(
                    hub,
                    principal,
                    name,
                    arguments,
                    tool=resolved,
                    route=call,
                    on_progress=call.progress if call.wants_progress else None,
                    client_meta=params.get("_meta"),
                    retry_fields=params,
                )
        elif method == "prompts/get":
            prompt = hub.catalog.prompt(target)
            upstream = prompt.upstream if prompt is not None else None

            async def op(call: FrontCall) -> dict[str, Any]:
                return await dispatch.get_prompt(
                    hub,
                    principal,
                    target,
                    params.get("arguments"),
                    route=call,
                    client_meta=params.get("_meta"),
                    retry_fields=params,
                )
        else:
            found = hub.catalog.resolve_resource(target)
            upstream = found[0] if found is not None else None

            async def op(call: FrontCall) -> dict[str, Any]:
                return await dispatch.read_resource(
                    hub, principal, target, route=call, modern=session.modern, retry_fields=params
                )

        return await self.interactive(session, message, emit, target, op, upstream)

    def _lazy_answer(self, principal: Principal, name: str, arguments: Any) -> dict[str, Any]:
        """search_tools and describe_tool: answered by the hub from its catalog."""
        args = arguments if isinstance(arguments, dict) else {}
        snapshot = self.hub.catalog.snapshot
        if name == lazy.SEARCH:
            return lazy.search(snapshot, principal, args.get("query"), args.get("limit"))
        return lazy.describe(snapshot, principal, args.get("names", args.get("name")))

    def initialize(self, session: FrontSession, params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(jsonrpc.INVALID_PARAMS, "initialize: 'protocolVersion' must be a string")
        version = requested if requested in LEGACY_VERSIONS else LATEST_LEGACY
        session.protocol_version = version
        caps = params.get("capabilities")
        session.client_capabilities = caps if isinstance(caps, dict) else {}
        info = params.get("clientInfo")
        session.client_info = info if isinstance(info, dict) else {}
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": self.hub.server_info(),
        }
        instructions = self.hub.instructions(session.principal)
        if instructions:
            result["instructions"] = instructions
        return result

    async def subscribe(self, session: FrontSession, params: dict[str, Any], subscribe: bool) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(jsonrpc.INVALID_PARAMS, "'uri' must be a string")
        resolved = self.hub.catalog.resolve_resource(uri)
        if resolved is None or not self.hub.catalog.may_read(session.principal, resolved[0]):
            raise dispatch.resource_not_found(uri, session.modern)
        if subscribe and uri not in session.subscriptions:
            session.subscriptions.add(uri)
            await self.hub.subscribe_upstream(uri, True)
        elif not subscribe and uri in session.subscriptions:
            session.subscriptions.discard(uri)
            await self.hub.subscribe_upstream(uri, False)
        return {}

    async def complete(self, session: FrontSession, params: dict[str, Any]) -> dict[str, Any]:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise RpcError(jsonrpc.INVALID_PARAMS, "completion/complete: 'ref' must be an object")
        catalog = self.hub.catalog
        forwarded = {k: v for k, v in params.items() if k != "_meta"}
        if ref.get("type") == "ref/prompt":
            entry = catalog.prompt(str(ref.get("name")))
            if entry is None or not session.principal.may_call(entry.name):
                raise RpcError(jsonrpc.INVALID_PARAMS, f"Unknown prompt: {ref.get('name')!r}")
            upstream = entry.upstream
            forwarded["ref"] = {**ref, "name": entry.original}
        elif ref.get("type") == "ref/resource":
            resolved = catalog.resolve_resource(str(ref.get("uri")))
            if resolved is None or not catalog.may_read(session.principal, resolved[0]):
                raise dispatch.resource_not_found(str(ref.get("uri")), session.modern)
            upstream, original = resolved
            forwarded["ref"] = {**ref, "uri": original}
        else:
            raise RpcError(jsonrpc.INVALID_PARAMS, "completion/complete: ref.type must be ref/prompt or ref/resource")
        if "completions" not in upstream.capabilities:
            return {"completion": {"values": [], "hasMore": False}}
        return await upstream.request("completion/complete", forwarded)

    async def listen(
        self, session: FrontSession, message: dict[str, Any], params: dict[str, Any], emit: Emit
    ) -> dict[str, Any]:
        """A long-lived stream of the change notifications the client opted in to (2026-07-28)."""
        wanted = params.get("notifications")
        if not isinstance(wanted, dict):
            raise RpcError(jsonrpc.INVALID_PARAMS, "subscriptions/listen: 'notifications' must be an object")
        uris = wanted.get("resourceSubscriptions") or []
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise RpcError(jsonrpc.INVALID_PARAMS, "notifications.resourceSubscriptions must be a list of URIs")
        honored: dict[str, Any] = {}
        for key in ("toolsListChanged", "promptsListChanged", "resourcesListChanged"):
            if wanted.get(key) is True:
                honored[key] = True
        if uris:
            honored["resourceSubscriptions"] = list(uris)
        subscription_id = message["id"]
        listener = Listener(
            session.principal.name,
            subscription_id,
            bool(honored.get("toolsListChanged")),
            bool(honored.get("promptsListChanged")),
            bool(honored.get("resourcesListChanged")),
            set(uris),
            emit,
            principal=session.principal,
        )
        await emit(
            jsonrpc.notification(
                "notifications/subscriptions/acknowledged",
                {"_meta": {META_SUBSCRIPTION_ID: subscription_id}, "notifications": honored},
            )
        )
        self.front.listeners.add(listener)
        for uri in uris:
            await self.hub.subscribe_upstream(uri, True)
        scope = anyio.CancelScope()
        session.in_flight[subscription_id] = scope
        try:
            with scope:
                await listener.closed.wait()
        finally:
            session.in_flight.pop(subscription_id, None)
            self.front.listeners.discard(listener)
            with anyio.CancelScope(shield=True):
                for uri in uris:
                    await self.hub.subscribe_upstream(uri, False)
        return {"_meta": {META_SUBSCRIPTION_ID: subscription_id}}

    # --- calls that may need the client's input -------------------------------------------------------
    async def interactive(
        self,
        session: FrontSession,
        message: dict[str, Any],
        emit: Emit,
        target: str,
        op: Operation,
        upstream: Upstream | None = None,
    ) -> dict[str, Any]:
        # A stateless client talking to a stateless upstream: input_required passes through as is,
        # with the upstream's own keys and requestState, so nothing is parked here.
        # Built-ins in the hub never ask the client for input, so their calls need no parking either.
        if not session.modern or (upstream is not None and (upstream.modern or upstream.kind.in_process)):
            call = FrontCall.for_request(session, message, emit)
            scope = anyio.CancelScope()
            session.in_flight[message["id"]] = scope
            try:
                with scope:
                    return await op(call)
                raise RpcError(jsonrpc.REQUEST_CANCELLED, "request cancelled by the client")
            finally:
                session.in_flight.pop(message["id"], None)
        return await self._input_rounds(session, message, emit, target, op)

    async def _input_rounds(
        self, session: FrontSession, message: dict[str, Any], emit: Emit, target: str, op: Operation
    ) -> dict[str, Any]:
        broker = self.front.broker
        params = message.get("params") or {}
        method = message["method"]
        principal = session.principal.name
        responses = check_input_responses(params.get("inputResponses"))
        state = params.get("requestState")
        if state is not None:
            parked = broker.resume(state, principal, method, target)
            parked.answer(responses)
            if parked.outstanding:
                return broker.input_required(parked)
        else:
            parked = broker.park(principal, method, target)
            call = FrontCall.for_request(session, message, parked.progress_emit)
            call.input_broker = parked
            self.hub.task_group.start_soon(self._run_parked, parked, call, op)
        try:
            kind, value = await broker.next_round(parked, emit)
        except anyio.get_cancelled_exc_class():
            # Closing the response stream cancels the request (2026-07-28).
            if parked.cancel_scope is not None:
                parked.cancel_scope.cancel()
            broker.release(parked)
            raise
        if kind == "input":
            if state is None and broker.announce is not None:
                await broker.announce(parked.token)
            return broker.input_required(parked)
        broker.release(parked)
        outcome, payload = value
        if outcome == "error":
            raise payload
        result: dict[str, Any] = payload
        return result

    async def _run_parked(self, parked: ParkedCall, call: FrontCall, op: Operation) -> None:
        outcome: tuple[str, Any]
        with anyio.CancelScope() as scope:
            parked.cancel_scope = scope
            try:
                outcome = ("ok", await op(call))
            except RpcError as exc:
                outcome = ("error", exc)
            except Exception:
                _log.exception("stateless call failed")
                outcome = ("error", RpcError(jsonrpc.INTERNAL_ERROR, "internal error"))
            if call.fatal is not None:
                outcome = ("error", call.fatal)
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await parked.events_in.send(("done", outcome))


def _without_server_info(result: dict[str, Any]) -> dict[str, Any]:
    """A session-era response without an upstream's `_meta` serverInfo stamp (the one place it is
    dropped; stateless responses get the hub's own instead)."""
    meta = result.get("_meta")
    if not isinstance(meta, dict) or META_SERVER_INFO not in meta:
        return result
    rest = {k: v for k, v in meta.items() if k != META_SERVER_INFO}
    result = {k: v for k, v in result.items() if k != "_meta"}
    if rest:
        result["_meta"] = rest
    return result
