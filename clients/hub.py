"""A Python client for a toolmux hub, over streamable HTTP or stdio.

    async with HubClient.http("http://127.0.0.1:4000/mcp/", key="...") as hub:
        tools = await hub.list_tools()
        result = await hub.call("storage-put_object", bucket="default", key="a.txt", text="hi")

`call()` returns the structured result and raises `ToolError` for `isError` results;
`call_tool()` returns the full typed `CallToolResult`.
"""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.shared.dispatcher import ProgressFnT

from aggregator.protocol import jsonrpc, sse
from aggregator.protocol.eras import (
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_PROTOCOL_VERSION,
    MODERN_VERSION,
)
from aggregator.protocol.headers import PROTOCOL_VERSION, modern_headers
from servers.kit.context import delegation_meta
from servers.kit.errors import ToolError, error_from_result

# An async callable (progress, total, message), as the SDK's client calls it.
ProgressCallback = ProgressFnT


def _wire(result: types.CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class HubClient:
    """A connected MCP client session to a hub (or any MCP server)."""

    def __init__(
        self,
        target: str | StdioServerParameters,
        *,
        key: str | None = None,
        mode: str = "legacy",
        timeout: float = 60.0,
        **client_options: Any,
    ) -> None:
        self._target = target
        self._key = key
        self._mode = mode
        self._timeout = timeout
        self._client_options = client_options
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None

    @classmethod
    def http(cls, url: str, key: str | None = None, **options: Any) -> HubClient:
        return cls(url, key=key, **options)

    @classmethod
    def stdio(cls, command: str, args: list[str], env: dict[str, str] | None = None, **options: Any) -> HubClient:
        return cls(StdioServerParameters(command=command, args=args, env=env), **options)

    async def __aenter__(self) -> HubClient:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            target: Any = self._target
            if isinstance(target, str):
                from mcp.client.streamable_http import streamable_http_client

                headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(self._timeout, read=None))
                )
                target = streamable_http_client(target, http_client=http)
            self._client = await stack.enter_async_context(
                Client(target, mode=self._mode, read_timeout_seconds=self._timeout, **self._client_options)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("HubClient is not connected; use 'async with'")
        return self._client

    async def list_tools(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self.client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> types.CallToolResult:
        return await self.client.call_tool(
            name, arguments or {}, read_timeout_seconds=timeout, progress_callback=progress
        )

    async def call(self, name: str, /, **arguments: Any) -> Any:
        """Call a tool and return its structured result; an `isError` result raises `ToolError`."""
        wire = _wire(await self.call_tool(name, arguments))
        error = error_from_result(wire)
        if error is not None:
            raise error
        if "structuredContent" in wire:
            return wire["structuredContent"]
        return wire.get("content", [])


class HttpHubCaller:
    """`HubCaller` for a domain server running as a child of a hub: calls back over HTTP.

    Each call is one stateless (2026-07-28) request on a pooled keep-alive connection: no
    handshake and no session, so an agent calling the hub every turn pays one round trip.
    """

    def __init__(self, url: str, key: str | None) -> None:
        self._url = url
        self._key = key
        self._http: httpx2.AsyncClient | None = None
        self._ids = itertools.count(1)

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            headers = {"Accept": "application/json, text/event-stream", PROTOCOL_VERSION: MODERN_VERSION}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            self._http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0, read=None))
        return self._http

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        body = jsonrpc.request(
            request_id,
            "tools/call",
            {
                "name": name,
                "arguments": arguments,
                "_meta": {
                    META_PROTOCOL_VERSION: MODERN_VERSION,
                    META_CLIENT_CAPABILITIES: {},
                    META_CLIENT_INFO: {"name": "toolmux-child", "version": "0.1.0"},
                    **delegation_meta(),
                },
            },
        )
        headers = modern_headers(body, MODERN_VERSION)
        try:
            response = await self._client().post(
                self._url,
                content=jsonrpc.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
                timeout=timeout or 300.0,
            )
            message = _final_message(response, request_id)
        except (httpx2.HTTPError, ValueError) as exc:
            raise ToolError(f"could not reach the hub to call {name}: {exc}", code="unavailable") from None
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {}
            raise ToolError(f"{name}: {error.get('message', 'error')}", code="upstream_error")
        result = message.get("result")
        if not isinstance(result, dict):
            raise ToolError(f"{name}: the hub answered without a result", code="upstream_error")
        return result


def _final_message(response: httpx2.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC response in a JSON body or at the end of an SSE body."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for event in reversed(sse.parse_events(response.content)):
            message = jsonrpc.loads(event.data) if event.data else None
            if isinstance(message, dict) and message.get("id") == request_id:
                return message
        raise ValueError(f"no response in the event stream (HTTP {response.status_code})")
    message = response.json()
    if not isinstance(message, dict):
        raise ValueError(f"unexpected body (HTTP {response.status_code})")
    return message
