"""The one path every call takes: resolve once, scope, validate once, forward, time out, count.

Both MCP faces and every HTTP facade call through here, so these rules are written once. A
`tools/call` is resolved a single time into a `ResolvedTool` (catalog entry, upstream, the
validation rule, the header rule), which travels with the call: the HTTP face resolves it to
check the `Mcp-Param-*` headers, and the same object reaches `call_tool`.

Validation happens once per call, in the hub, against the tool's compiled contract. An in-process
built-in is the exception: it runs the very same contract itself, so the hub skips its own check.
A built-in running as a child process also checks its input again: the child is a standalone MCP
server whose contract is its own (it can be run without a hub), and nothing in its stdio stream
could prove to it that the hub already checked — a flag in `_meta` is only as trustworthy as
whoever wrote it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from aggregator.auth import INTERNAL, KeyStore
from aggregator.catalog import Catalog, ToolEntry
from aggregator.ids import new_id
from aggregator.metrics import Metrics
from aggregator.principal import Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import META_CLIENT_CAPABILITIES
from aggregator.protocol.errors import ErrorCode, ToolmuxError, from_rpc_error
from aggregator.protocol.headers import param_headers
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.peer import CallRoute, ProgressFn
from aggregator.upstreams.upstream import Upstream
from servers.kit.context import CALLER_META_KEY, ON_BEHALF_OF_META_KEY, REQUEST_ID_META_KEY
from servers.kit.contract import ToolContract
from servers.kit.domain import STRUCTURED_ONLY_META_KEY
from servers.kit.errors import ToolError, error_result


class Services(Protocol):
    """What dispatch needs of the hub (the hub satisfies it; tests can pass something smaller)."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def keys(self) -> KeyStore: ...


@dataclass(frozen=True, slots=True)
class ResolvedTool:
    """A tools/call target, resolved once: what it calls, where, and which rules apply to it."""

    entry: ToolEntry
    # The input contract the hub checks (None: the upstream alone judges the arguments).
    contract: ToolContract | None
    # `x-mcp-header` parameters: what a stateless HTTP request must mirror in `Mcp-Param-*`.
    mcp_headers: dict[str, tuple[str, ...]]

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def upstream(self) -> Upstream:
        return self.entry.upstream


def resolve_tool(services: Services, principal: Principal, name: str) -> ResolvedTool | None:
    """The tool `name` as `principal` may call it; None when it does not exist or is out of scope
    (both look the same to the caller: a key must not learn what exists)."""
    entry = services.catalog.tool(name)
    if entry is None or not principal.may_call(name):
        return None
    # An in-process built-in validates against the same contract itself; checking twice costs time.
    contract = None if entry.upstream.kind.in_process else entry.contract
    return ResolvedTool(entry, contract, entry.mcp_headers)


def tool_error(exc: RpcError) -> ToolError:
    """A protocol-level failure of a call, as the ToolError an in-process caller handles."""
    return ToolError.from_dict(from_rpc_error(exc.code, exc.message, exc.data).to_dict())


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


class ClientRoute(CallRoute, Protocol):
    """The front call a request is made for, as dispatch sees it (implemented by the front layer)."""

    @property
    def stateless(self) -> bool:
        """True when the client speaks the stateless revision and answers `input_required` itself."""
        ...

    def upstream_envelope(self) -> dict[str, Any]:
        """The caller's part of a stateless upstream request's `_meta`: capabilities and log level."""
        ...


def envelope_for(route: ClientRoute | None) -> dict[str, Any]:
    return route.upstream_envelope() if route is not None else {META_CLIENT_CAPABILITIES: {}}


async def forward(
    upstream: Upstream,
    method: str,
    params: dict[str, Any],
    *,
    route: ClientRoute | None,
    on_progress: ProgressFn | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send a request that may come back `input_required` (stateless upstreams).

    A stateless client gets that result as it is and drives the rounds itself. For a legacy
    client the hub drives them: each input request goes to the client as a real request, and the
    original request is retried with the answers.
    """
    envelope = envelope_for(route) if upstream.modern else None
    for _ in range(MAX_INPUT_ROUNDS):
        result = await upstream.request(
            method, params, route=route, on_progress=on_progress, envelope=envelope, headers=headers
        )
        if result.get("resultType") != "input_required" or (route is not None and route.stateless):
            return result
        requests = result.get("inputRequests") or {}
        if route is None:
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


def acting_principal(services: Services, principal: Principal, client_meta: dict[str, Any] | None) -> Principal:
    """Whose scopes a call is held to: a domain calling back for a caller acts as that caller.

    Only calls made with the internal key (the hub's own domains) may name a caller; a name that
    is no longer a key may call nothing.
    """
    if principal is not INTERNAL or not isinstance(client_meta, dict):
        return principal
    name = client_meta.get(ON_BEHALF_OF_META_KEY)
    if not isinstance(name, str) or name == INTERNAL.name:
        return principal
    found = services.keys.secret_for(name)
    return found[1] if found is not None else Principal(name=name, allowed_tools=())


def unknown_tool(services: Services, name: str, principal: Principal) -> RpcError:
    """What a call to a tool the catalog lacks gets: "unknown" with the nearest names, or, when the
    tool belongs to a server that is restarting, a retryable "unavailable" naming that server (its
    tools leave the catalog while it is down, but they are not gone)."""
    owner = restarting_owner(services, name, principal)
    if owner is not None:
        return restarting_error(owner, name)
    near = services.catalog.nearest(name, principal)
    hint = f"; did you mean: {', '.join(near)}?" if near else ""
    return RpcError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name!r}{hint}", {"tool": name, "nearest": near})


async def call_tool(
    hub: Services,
    principal: Principal,
    name: str,
    arguments: Any,
    *,
    tool: ResolvedTool | None = None,
    route: ClientRoute | None = None,
    on_progress: ProgressFn | None = None,
    client_meta: dict[str, Any] | None = None,
    request_id: str | None = None,
    retry_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Call a namespaced tool; the wire CallToolResult (the upstream's `_meta` left as it came: the
    face that answers a client stamps its own identity). Protocol-level failures raise RpcError.

    `tool` is the call resolved earlier by the face (see `resolve_tool`); a caller without a front
    `route` (a facade, a built-in calling another tool) reads structured content only, so the
    server is told it need not render a JSON text block.
    """
    acting = acting_principal(hub, principal, client_meta)
    if tool is None or acting is not principal:
        # A domain calling back for a caller is held to that caller's scopes, resolved anew.
        principal = acting
        tool = resolve_tool(hub, principal, name)
        if tool is None:
            raise unknown_tool(hub, name, principal)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RpcError(jsonrpc.INVALID_PARAMS, "tools/call: 'arguments' must be an object")
    if tool.entry.shape is not None:
        # Arguments in the strict form the tool is listed in, back in the form its contract takes.
        arguments = tool.entry.shape.apply(arguments)
    started = time.perf_counter()
    if tool.contract is not None:
        try:
            tool.contract.validate_input(arguments)
        except ToolError as invalid:
            hub.metrics.record_call(name, "invalid", time.perf_counter() - started)
            return error_result(ToolError(f"{name}: {invalid.message}", field=invalid.field, reason=invalid.reason))
    upstream = tool.entry.upstream
    meta = forward_meta(client_meta, request_id or new_id(), principal.name)
    if route is None:
        meta[STRUCTURED_ONLY_META_KEY] = True
    params = {"name": tool.entry.original, "arguments": arguments, "_meta": meta}
    if retry_fields and upstream.modern:
        params.update({k: v for k, v in retry_fields.items() if k in MRTR_FIELDS})
    outcome = "error"
    try:
        headers = param_headers(tool.mcp_headers, arguments) if upstream.modern else None
        result = await forward(upstream, "tools/call", params, route=route, on_progress=on_progress, headers=headers)
        outcome = "tool_error" if result.get("isError") else "ok"
        return result
    except RpcError as exc:
        outcome = {jsonrpc.UPSTREAM_TIMEOUT: "timeout", jsonrpc.UPSTREAM_UNAVAILABLE: "unavailable"}.get(
            exc.code, "error"
        )
        raise
    except anyio.get_cancelled_exc_class():
        outcome = "cancelled"
        raise
    finally:
        hub.metrics.record_call(name, outcome, time.perf_counter() - started, principal.name)


async def get_prompt(
    hub: Services,
    principal: Principal,
    name: str,
    arguments: Any,
    *,
    route: ClientRoute | None = None,
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
    return await forward(entry.upstream, "prompts/get", params, route=route)


async def read_resource(
    hub: Services,
    principal: Principal,
    uri: str,
    *,
    route: ClientRoute | None = None,
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
        # A resources/read names nothing but its URI, so either era's "not found" (and any invalid
        # params) means this URI cannot be read: said again in the client's era, with the hub's URI.
        if exc.code in (jsonrpc.RESOURCE_NOT_FOUND, jsonrpc.INVALID_PARAMS):
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
    return result


def resource_not_found(uri: str, modern: bool) -> RpcError:
    # 2026-07-28 moved "resource not found" from -32002 to Invalid Params.
    return RpcError(
        jsonrpc.INVALID_PARAMS if modern else jsonrpc.RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri}
    )


def restarting_owner(services: Services, name: str, principal: Principal) -> Upstream | None:
    """The restarting server `name` belongs to, when `principal` may call it (else None: a key
    must not learn of tools outside its scope, up or down)."""
    if not principal.may_call(name):
        return None
    catalog = services.catalog
    server, separator, original = name.partition(catalog.separator)
    candidates = [u for u in catalog.snapshot.upstreams.values() if u.restarting]
    for upstream in candidates:
        prefixed = upstream.entry.prefix != "never"
        if prefixed and (upstream.name != server or not separator):
            continue
        wanted = original if prefixed else name
        known = {t.get("name") for t in upstream.listing.tools}
        # A server that never listed its tools yet may own any name under its prefix.
        if wanted in known or (prefixed and not known):
            return upstream
    return None


def restarting_error(upstream: Upstream, name: str) -> RpcError:
    retry_after = upstream.retry_hint()
    error = ToolmuxError(
        f"unavailable: server {upstream.name!r} is restarting ({upstream.reason or upstream.state}); "
        f"{name!r} is back when it is, retry in {retry_after:g} s",
        code=ErrorCode.UNAVAILABLE,
        retry_after=retry_after,
        reason="restarting",
        data={"server": upstream.name, "tool": name},
    )
    return RpcError(jsonrpc.UPSTREAM_UNAVAILABLE, error.message, error.to_dict())
