"""The one path every call takes: scope check, lookup, validation, forwarding, timeouts, metrics.

Both MCP faces and every HTTP facade call through here, so these rules are written once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from aggregator.ids import new_id
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_CLIENT_CAPABILITIES, META_LOG_LEVEL, META_SERVER_INFO
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.peer import CallRoute, ProgressFn
from aggregator.upstreams.upstream import Upstream
from servers.kit.context import CALLER_META_KEY, REQUEST_ID_META_KEY
from servers.kit.errors import ToolError, error_result

if TYPE_CHECKING:
    from aggregator.hub import Hub

# `_meta` keys a client may not set on what reaches an upstream (the hub sets its own, or they
# belong to the client-hub hop only).
_HOP_META_PREFIXES = ("toolmux/", "io.modelcontextprotocol/")


def forward_meta(client_meta: dict[str, Any] | None, request_id: str, caller: str) -> dict[str, Any]:
    meta = {
        k: v for k, v in (client_meta or {}).items() if k != "progressToken" and not k.startswith(_HOP_META_PREFIXES)
    }
    meta[REQUEST_ID_META_KEY] = request_id
    meta[CALLER_META_KEY] = caller
    return meta


MAX_INPUT_ROUNDS = 10
# Retry fields of a multi round-trip request, passed through to a stateless upstream unchanged.
MRTR_FIELDS = ("inputResponses", "requestState")


def envelope_for(route: CallRoute | None) -> dict[str, Any]:
    """The caller's part of a stateless upstream request's `_meta`: capabilities and log level."""
    session = getattr(route, "session", None)
    if session is None:
        return {META_CLIENT_CAPABILITIES: {}}
    envelope: dict[str, Any] = {META_CLIENT_CAPABILITIES: session.client_capabilities}
    # A legacy client that never set a level hears every log line, as a legacy server would send it.
    level = getattr(route, "request_log_level", None) if session.modern else (session.log_level or "debug")
    if level:
        envelope[META_LOG_LEVEL] = level
    return envelope


async def forward(
    upstream: Upstream,
    method: str,
    params: dict[str, Any],
    *,
    route: CallRoute | None,
    on_progress: ProgressFn | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send a request that may come back `input_required` (stateless upstreams).

    A stateless client gets that result as it is and drives the rounds itself. For a legacy
    client the hub drives them: each input request goes to the client as a real request, and the
    original request is retried with the answers.
    """
    envelope = envelope_for(route)
    session = getattr(route, "session", None)
    for _ in range(MAX_INPUT_ROUNDS):
        result = await upstream.request(
            method, params, route=route, on_progress=on_progress, envelope=envelope, headers=headers
        )
        if result.get("resultType") != "input_required" or (session is not None and session.modern):
            return result
        requests = result.get("inputRequests") or {}
        if route is None or session is None:
            wanted = sorted({str(r.get("method")) for r in requests.values() if isinstance(r, dict)})
            raise RpcError(
                jsonrpc.MISSING_CLIENT_CAPABILITY,
                f"{method} needs input from an MCP client ({', '.join(wanted)}), which this caller cannot give",
            )
        responses = {}
        for key, request in requests.items():
            if isinstance(request, dict) and isinstance(request.get("method"), str):
                responses[key] = await route.relay_request(request["method"], request.get("params"))
        params = {**params, "inputResponses": responses}
        if "requestState" in result:
            params["requestState"] = result["requestState"]
        else:
            params.pop("requestState", None)
    raise RpcError(jsonrpc.INTERNAL_ERROR, f"{method} asked for client input more than {MAX_INPUT_ROUNDS} times")


def param_headers(declared: dict[str, tuple[str, ...]], arguments: dict[str, Any]) -> dict[str, str] | None:
    """`Mcp-Param-*` headers a stateless HTTP upstream expects for the tool's `x-mcp-header` parameters."""
    if not declared:
        return None
    out: dict[str, str] = {}
    for name, path in declared.items():
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        out[f"Mcp-Param-{name}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out or None


def strip_server_identity(result: dict[str, Any]) -> dict[str, Any]:
    """Drop the child's `_meta` serverInfo stamp: the client is talking to the hub, not to it."""
    meta = result.get("_meta")
    if isinstance(meta, dict) and META_SERVER_INFO in meta:
        rest = {k: v for k, v in meta.items() if k != META_SERVER_INFO}
        result = {k: v for k, v in result.items() if k != "_meta"}
        if rest:
            result["_meta"] = rest
    return result


def unknown_tool(hub: Hub, name: str, principal: Principal) -> RpcError:
    near = hub.catalog.nearest(name, principal)
    hint = f"; did you mean: {', '.join(near)}?" if near else ""
    return RpcError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name!r}{hint}", {"tool": name, "nearest": near})


async def call_tool(
    hub: Hub,
    principal: Principal,
    name: str,
    arguments: Any,
    *,
    route: CallRoute | None = None,
    on_progress: ProgressFn | None = None,
    client_meta: dict[str, Any] | None = None,
    request_id: str | None = None,
    retry_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Call a namespaced tool; the wire CallToolResult. Protocol-level failures raise RpcError."""
    entry = hub.catalog.tool(name)
    if entry is None or not principal.may_call(name):
        # Out-of-scope tools answer exactly like missing ones: a key must not learn what exists.
        raise unknown_tool(hub, name, principal)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(jsonrpc.INVALID_PARAMS, "tools/call: 'arguments' must be an object")
    started = time.perf_counter()
    # An in-process built-in validates against the same contract itself; checking twice costs time.
    contract = entry.contract if entry.upstream.kind != "builtin-inprocess" else None
    if contract is not None:
        try:
            contract.validate_input(arguments)
        except ToolError as invalid:
            hub.metrics.record_call(name, "invalid", time.perf_counter() - started)
            return error_result(ToolError(f"{name}: {invalid.message}", field=invalid.field))
    rid = request_id or new_id()
    params = {"name": entry.original, "arguments": arguments, "_meta": forward_meta(client_meta, rid, principal.name)}
    if retry_fields and entry.upstream.modern:
        params.update({k: v for k, v in retry_fields.items() if k in MRTR_FIELDS})
    outcome = "error"
    try:
        headers = param_headers(entry.mcp_headers, arguments) if entry.upstream.modern else None
        result = await forward(
            entry.upstream, "tools/call", params, route=route, on_progress=on_progress, headers=headers
        )
        outcome = "tool_error" if result.get("isError") else "ok"
        return strip_server_identity(result)
    except RpcError as exc:
        outcome = {jsonrpc.UPSTREAM_TIMEOUT: "timeout", jsonrpc.UPSTREAM_UNAVAILABLE: "unavailable"}.get(
            exc.code, "error"
        )
        raise
    except anyio.get_cancelled_exc_class():
        outcome = "cancelled"
        raise
    finally:
        hub.metrics.record_call(name, outcome, time.perf_counter() - started)


async def get_prompt(
    hub: Hub,
    principal: Principal,
    name: str,
    arguments: Any,
    *,
    route: CallRoute | None = None,
    client_meta: dict[str, Any] | None = None,
    retry_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    entry = hub.catalog.prompt(name)
    if entry is None or not principal.may_call(name):
        raise RpcError(jsonrpc.INVALID_PARAMS, f"Unknown prompt: {name!r}")
    params: dict[str, Any] = {"name": entry.original}
    if arguments is not None:
        params["arguments"] = arguments
    params["_meta"] = forward_meta(client_meta, new_id(), principal.name)
    if retry_fields and entry.upstream.modern:
        params.update({k: v for k, v in retry_fields.items() if k in MRTR_FIELDS})
    return strip_server_identity(await forward(entry.upstream, "prompts/get", params, route=route))


async def read_resource(
    hub: Hub,
    principal: Principal,
    uri: str,
    *,
    route: CallRoute | None = None,
    modern: bool = False,
    retry_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resolved = hub.catalog.resolve_resource(uri)
    if resolved is None or not hub.catalog.may_read(principal, resolved[0]):
        raise resource_not_found(uri, modern)
    upstream, original = resolved
    params: dict[str, Any] = {"uri": original}
    if retry_fields and upstream.modern:
        params.update({k: v for k, v in retry_fields.items() if k in MRTR_FIELDS})
    try:
        result = await forward(upstream, "resources/read", params, route=route)
    except RpcError as exc:
        if exc.code in (-32002, jsonrpc.INVALID_PARAMS) and "not found" in exc.message.lower():
            raise resource_not_found(uri, modern) from None
        raise
    contents = result.get("contents")
    if isinstance(contents, list):
        result["contents"] = [
            {**c, "uri": hub.catalog.resource_uri(upstream, c["uri"])}
            if isinstance(c, dict) and isinstance(c.get("uri"), str)
            else c
            for c in contents
        ]
    return strip_server_identity(result)


def resource_not_found(uri: str, modern: bool) -> RpcError:
    # 2026-07-28 moved "resource not found" from -32002 to Invalid Params.
    return RpcError(jsonrpc.INVALID_PARAMS if modern else -32002, f"Resource not found: {uri}", {"uri": uri})
