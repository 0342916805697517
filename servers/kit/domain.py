"""`Domain`: binds plain async handlers to the tool contracts in `schemas/` and builds an MCP server.

A handler is `async def handler(args: dict, ctx: ToolContext) -> dict | ToolResult`. Before it
runs, the arguments are validated against the contract's inputSchema (a failure is an `isError`
result naming the field and rule). The dict it returns becomes `structuredContent` (checked
against the outputSchema) plus a JSON text block. `ToolError` becomes an `isError` result with a
machine-readable code; any other exception is logged with the request id and answered with a
generic internal error that carries no traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import anyio
import orjson

import schemas
from servers.kit.context import HubCaller, ToolContext, acting_for
from servers.kit.contract import ToolContract
from servers.kit.errors import ToolError, error_result

if TYPE_CHECKING:
    # The MCP SDK's server is needed only to serve a domain as its own process (`build_server`):
    # a hub running built-ins in-process does not pay its import (~0.5 s, ~20 MB) at start.
    import mcp_types as types
    from mcp.server import Server
    from mcp.server.context import ServerRequestContext

    # The SDK's runner sends a handler's plain dict as the result (mcp/server/runner.py `_dump_result`
    # accepts BaseModel or dict), but its handler annotations name only the pydantic models. Handing
    # it the dict the domain already built skips a model round-trip on every call.
    _ListToolsHandler = Callable[
        [ServerRequestContext[Any, Any], types.PaginatedRequestParams | None], Awaitable[types.ListToolsResult]
    ]
    _CallToolHandler = Callable[
        [ServerRequestContext[Any, Any], types.CallToolRequestParams],
        Awaitable[types.CallToolResult | types.InputRequiredResult],
    ]

_log = logging.getLogger("toolmux.kit")

VERSION = "0.1.0"
# Custom JSON-RPC method a hub sends a domain running as its child for its deep health check.
HEALTH_METHOD = "toolmux/health"
# Custom JSON-RPC method a hub sends a domain running as its child to find the HTTP face the
# domain serves itself (storage's S3 API): answers {"socket": path, "token": secret}.
FACE_METHOD = "toolmux/http_face"
RequestHandler = Callable[[], Awaitable[dict[str, Any]]]
# Set by the hub on calls whose caller reads structuredContent only (no JSON text block wanted).
STRUCTURED_ONLY_META_KEY = "toolmux/structuredOnly"


@dataclass
class ToolResult:
    """A handler result with more than structured data: resource links, images, custom text."""

    structured: dict[str, Any] | None = None
    content: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None


ToolHandler = Callable[[dict[str, Any], ToolContext], Awaitable["dict[str, Any] | ToolResult"]]
Lifespan = Callable[[], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@cache
def _contracts(domain: str) -> dict[str, ToolContract]:
    """Compiled contracts per domain, built once per process (checking schemas is not free)."""
    return {t["name"]: ToolContract.from_dict(t) for t in schemas.load(domain)["tools"]}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class Domain:
    """One domain server: its contracts, handlers, and the MCP server built from them."""

    def __init__(
        self,
        name: str,
        *,
        contract: str | None = None,
        instructions: str | None = None,
        hub: HubCaller | None = None,
        lifespan: Lifespan | None = None,
        server_options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.instructions = instructions
        self.hub = hub
        self._lifespan = lifespan
        self._server_options = server_options or {}
        self.description: str = schemas.load(contract or name).get("description", "")
        self.contracts: dict[str, ToolContract] = dict(_contracts(contract or name))
        self.handlers: dict[str, ToolHandler] = {}
        self.hidden: dict[str, str] = {}
        # The domain's plain logic object, for faces in the same process that must bypass JSON
        # (e.g. storage's HTTP API streaming bytes). Set by the domain's `create()`.
        self.service: Any = None
        # Optional deep health check (backends reachable, engines loadable): the hub's /health
        # shows what it returns, e.g. {"healthy": bool, "details": {...}}.
        self.health: Callable[[], Awaitable[dict[str, Any]]] | None = None
        # Custom parameterless requests the hub may send its child (e.g. FACE_METHOD).
        self.requests: dict[str, RequestHandler] = {}

    # --- registration ---------------------------------------------------------------------------
    def tool(self, name: str) -> Callable[[ToolHandler], ToolHandler]:
        """Decorator binding a handler to the contract named `name`."""

        def register(handler: ToolHandler) -> ToolHandler:
            self.add_tool(name, handler)
            return handler

        return register

    def add_tool(self, name: str, handler: ToolHandler) -> None:
        if name not in self.contracts:
            raise KeyError(f"schemas/{self.name}: no contract for tool {name!r}")
        self.handlers[name] = handler

    def add_request(self, method: str, handler: RequestHandler) -> None:
        """Answer the custom request `method` (sent by a hub to its child) with `handler()`."""
        self.requests[method] = handler

    def hide(self, name: str, reason: str) -> None:
        """Leave a contracted tool out of tools/list (e.g. SMTP tools when no account has SMTP)."""
        self.hidden[name] = reason

    def visible_tools(self) -> list[str]:
        return [n for n in self.contracts if n in self.handlers and n not in self.hidden]

    def check_complete(self) -> None:
        """Every contract has a handler or a reason to be hidden (call at the end of `create`)."""
        missing = [n for n in self.contracts if n not in self.handlers and n not in self.hidden]
        if missing:
            raise RuntimeError(f"domain {self.name!r}: contracts without handlers: {', '.join(missing)}")

    # --- calling --------------------------------------------------------------------------------
    def list_tools(self) -> list[dict[str, Any]]:
        return [self.contracts[n].to_wire() for n in self.visible_tools()]

    async def call(self, name: str, arguments: dict[str, Any] | None, ctx: ToolContext) -> dict[str, Any]:
        """Run one tool call end to end and return the wire `CallToolResult` dict."""
        contract = self.contracts.get(name)
        if contract is None or name not in self.handlers or name in self.hidden:
            known = ", ".join(self.visible_tools())
            return error_result(ToolError(f"unknown tool {name!r}; this server has: {known}", code="not_found"))
        arguments = arguments if arguments is not None else {}
        try:
            contract.validate_input(arguments)
            with acting_for(ctx.caller):
                outcome = await self.handlers[name](arguments, ctx)
        except ToolError as exc:
            return error_result(exc)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            _log.exception("tool %s-%s failed (request id %s)", self.name, name, ctx.request_id)
            return error_result(ToolError(f"internal error in {name} (request id {ctx.request_id})", code="internal"))
        return self._shape(contract, outcome, ctx)

    def _shape(self, contract: ToolContract, outcome: dict[str, Any] | ToolResult, ctx: ToolContext) -> dict[str, Any]:
        result = outcome if isinstance(outcome, ToolResult) else ToolResult(structured=outcome)
        if result.structured is not None:
            problem = contract.output_problem(result.structured)
            if problem is not None:
                _log.error(
                    "tool %s-%s returned a result outside its outputSchema (request id %s): %s",
                    self.name,
                    contract.name,
                    ctx.request_id,
                    problem,
                )
                return error_result(
                    ToolError(
                        f"internal error in {contract.name}: result did not match the contract "
                        f"(request id {ctx.request_id})",
                        code="internal",
                    )
                )
        content: list[dict[str, Any]] = []
        if result.text is not None:
            content.append({"type": "text", "text": result.text})
        elif result.structured is not None and not ctx.meta.get(STRUCTURED_ONLY_META_KEY):
            # MCP clients that predate structured content read this text block; an in-process caller
            # (a facade, another tool) reads structuredContent and says so, sparing the JSON encoding.
            content.append({"type": "text", "text": _json_text(result.structured)})
        content.extend(result.content)
        wire: dict[str, Any] = {"content": content, "isError": False, "resultType": "complete"}
        if result.structured is not None:
            wire["structuredContent"] = result.structured
        return wire

    def lifespan_context(self) -> AbstractAsyncContextManager[None]:
        """The domain's lifespan (background work such as sweepers) as an async context manager."""
        if self._lifespan is not None:
            return self._lifespan()
        return _nothing()

    # --- MCP server -----------------------------------------------------------------------------
    def build_server(self) -> Server[Any]:
        import mcp_types as types
        from mcp.server import Server
        from mcp.server.caching import CacheableMethod, CacheHint

        domain = self

        async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> dict[str, Any]:
            return {"tools": domain.list_tools(), "resultType": "complete"}

        async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
            tool_ctx = ToolContext.from_request(params.name, ctx, domain.hub)
            return await domain.call(params.name, params.arguments, tool_ctx)

        def input_schema(name: str) -> dict[str, Any] | None:
            contract = domain.contracts.get(name)
            return contract.input_schema if contract else None

        @asynccontextmanager
        async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
            if domain._lifespan is None:
                yield {}
            else:
                async with domain._lifespan():
                    yield {}

        # The stateless revision requires freshness hints on list results; tool lists change only
        # on restart or with list_changed, so clients may cache them briefly.
        hints: dict[CacheableMethod, CacheHint] = {"tools/list": CacheHint(ttl_ms=60_000, scope="public")}
        server: Server[Any] = Server(
            f"toolmux-{self.name}",
            cache_hints=hints,
            version=VERSION,
            instructions=self.instructions,
            on_list_tools=cast("_ListToolsHandler", list_tools),
            on_call_tool=cast("_CallToolHandler", call_tool),
            get_tool_input_schema=input_schema,
            lifespan=lifespan,
            **self._server_options,
        )
        if self.health is not None:
            check = self.health

            async def health(ctx: ServerRequestContext[Any, Any], params: Any) -> dict[str, Any]:
                return {**(await check()), "resultType": "complete"}

            # A hub reaches the domain's own health check over MCP when the domain is its child.
            server.add_request_handler(HEALTH_METHOD, types.RequestParams, health)
        for method, handler in self.requests.items():
            server.add_request_handler(method, types.RequestParams, _answer_with(handler))
        return server


def _answer_with(handler: RequestHandler) -> Callable[[ServerRequestContext[Any, Any], Any], Awaitable[dict[str, Any]]]:
    async def answer(ctx: ServerRequestContext[Any, Any], params: Any) -> dict[str, Any]:
        return {**(await handler()), "resultType": "complete"}

    return answer
