"""A remote MCP server that accepts only OAuth access tokens, with its own small token endpoint
(client credentials, refresh with rotation) and the discovery documents MCP clients read."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.aggregator.upstreams.fakes import SessionServer

CLIENT_ID, CLIENT_SECRET = "hub", "hub-secret-0123456789"


@dataclass
class ProtectedUpstream:
    base: str = ""
    mcp: SessionServer = field(default_factory=SessionServer)
    access: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)  # every access token ever handed out
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> client id
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0

    def expire_access_tokens(self) -> None:
        self.access.clear()

    def revoke_refresh_tokens(self) -> None:
        self.refresh.clear()

    def issue_refresh_token(self) -> str:
        token = "r-" + secrets.token_urlsafe(8)
        self.refresh[token] = "public-client"
        return token

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/mcp", self.guarded, methods=["GET", "POST", "DELETE"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/.well-known/oauth-protected-resource/mcp", self.resource_metadata),
                Route("/.well-known/oauth-authorization-server", self.server_metadata),
            ]
        )

    async def guarded(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.access:
            self.refused += 1
            challenge = f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource/mcp"'
            return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"www-authenticate": challenge})
        return await self.mcp.endpoint(request)

    async def resource_metadata(self, request: Request) -> Response:
        return JSONResponse({"resource": f"{self.base}/mcp", "authorization_servers": [self.base]})

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base,
                "token_endpoint": f"{self.base}/token",
                "grant_types_supported": ["client_credentials", "refresh_token"],
            }
        )

    def _issue(self, with_refresh: bool) -> JSONResponse:
        access = "a-" + secrets.token_urlsafe(8)
        self.access.add(access)
        self.issued.append(access)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        if with_refresh:
            body["refresh_token"] = self.issue_refresh_token()
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        if form.get("grant_type") == "client_credentials":
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            return self._issue(with_refresh=False)
        if form.get("grant_type") == "refresh_token":
            if self.refresh.pop(form.get("refresh_token", ""), None) is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._issue(with_refresh=True)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
