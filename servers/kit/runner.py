"""Run one domain server alone: over stdio (for a hub or Claude Desktop) or streamable HTTP."""

from __future__ import annotations

import hmac
import logging
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.kit.domain import Domain

_log = logging.getLogger("toolmux.kit")


async def serve_stdio(domain: Domain) -> None:
    server = domain.build_server()
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)


class BearerKeyGuard:
    """Refuses HTTP requests that do not carry `Authorization: Bearer <key>` (constant-time check)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = b""
            for name, value in scope["headers"]:
                if name == b"authorization" and value[:7].lower() == b"bearer ":
                    presented = value[7:].strip()
            if not hmac.compare_digest(presented, self.key):
                body = b'{"error":"missing or wrong API key (Authorization: Bearer <key>)"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(domain: Domain, key: str, *, host: str = "127.0.0.1", allowed_hosts: list[str] | None = None) -> Any:
    server = domain.build_server()
    hosts = allowed_hosts or [f"{host}:*", "127.0.0.1:*", "localhost:*", "[::1]:*"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )
    app = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
    return BearerKeyGuard(app, key)


def serve_http(domain: Domain, *, host: str, port: int, key: str) -> None:
    print(f"toolmux server {domain.name}: MCP at http://{host}:{port}/mcp", file=sys.stderr)
    uvicorn.run(http_app(domain, key, host=host), host=host, port=port, log_level="warning")


def run_stdio(domain: Domain) -> None:
    anyio.run(serve_stdio, domain)
