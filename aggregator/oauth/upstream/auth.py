"""`httpx2.Auth` for a remote MCP server that wants OAuth: a bearer token on every request,
fetched (client credentials) or refreshed (refresh token) before it expires, and once more when
the server answers 401. When no token can be had, requests fail with `UpstreamAuthError`, whose
text the upstream shows as its down reason (`/health`, `toolmux tools`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from aggregator.oauth.config import UpstreamOAuth
from aggregator.oauth.upstream.vault import TokenVault

TOKEN_TIMEOUT = 15.0


class UpstreamAuthError(httpx2.ConnectError):
    """No usable token: the message says why and what to do. A ConnectError to the transports,
    so the upstream goes down with this reason and reconnects with backoff (a new login is
    picked up by the next attempt) rather than failing call after call."""


def well_known(url: str, suffix: str) -> str:
    """RFC 9728 / 8414 path-aware well-known URL: origin + /.well-known/<suffix> + path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/{suffix}{path}"


async def discover(client: httpx2.AsyncClient, server_url: str) -> dict[str, Any]:
    """The authorization server's metadata, found from the MCP server's protected resource metadata."""
    issuer: str | None = None
    parts = urlsplit(server_url)
    root = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource"
    for url in (well_known(server_url, "oauth-protected-resource"), root):
        response = await client.get(url)
        if response.status_code == 200:
            servers = response.json().get("authorization_servers") or []
            issuer = str(servers[0]) if servers else None
            break
    if issuer is None:
        raise UpstreamAuthError(f"no OAuth protected resource metadata at {server_url}; set oauth.token_url")
    for url in (well_known(issuer, "oauth-authorization-server"), well_known(issuer, "openid-configuration")):
        response = await client.get(url)
        if response.status_code == 200:
            metadata: dict[str, Any] = response.json()
            return metadata
    raise UpstreamAuthError(f"the authorization server {issuer} publishes no metadata; set oauth.token_url")


class UpstreamOAuthAuth(httpx2.Auth):
    def __init__(self, name: str, server_url: str, config: UpstreamOAuth, data_dir: Path) -> None:
        self.name = name
        self.server_url = server_url
        self.config = config
        self.vault = TokenVault(data_dir)
        self.tokens: dict[str, Any] | None = self.vault.load(name)
        self.token_url = config.token_url
        self._lock = anyio.Lock()

    # --- the flow httpx2 runs around each request -------------------------------------------
    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.access_token()
        request.headers["authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self.access_token(rejected=token)  # the server says it expired early or was revoked
            request.headers["authorization"] = f"Bearer {token}"
            yield request

    async def access_token(self, rejected: str | None = None) -> str:
        async with self._lock:
            tokens = self.tokens
            fresh = (
                tokens is not None
                and tokens.get("access_token") != rejected
                and float(tokens.get("expires_at", 0)) - self.config.refresh_margin_seconds > time.time()
            )
            if not fresh:
                if self.config.grant == "authorization_code":
                    tokens = self.vault.load(self.name) or tokens  # a `toolmux upstream login` since
                self.tokens = tokens = await self._renew(tokens)
                self.vault.save(self.name, tokens)
            assert tokens is not None
            return str(tokens["access_token"])

    # --- getting tokens -----------------------------------------------------------------------
    async def _renew(self, tokens: dict[str, Any] | None) -> dict[str, Any]:
        config = self.config
        form: dict[str, str] = {"resource": config.resource or self.server_url}
        if config.grant == "client_credentials":
            form["grant_type"] = "client_credentials"
            if config.scope:
                form["scope"] = config.scope
        elif tokens is not None and tokens.get("refresh_token"):
            form |= {"grant_type": "refresh_token", "refresh_token": str(tokens["refresh_token"])}
        else:
            raise UpstreamAuthError(f"not signed in to {self.name}: run 'toolmux upstream login {self.name}'")
        client_id = config.client_id or (tokens or {}).get("client_id")
        secret = config.client_secret or (tokens or {}).get("client_secret")
        basic: dict[str, Any] = {"auth": httpx2.BasicAuth(str(client_id), str(secret))} if client_id and secret else {}
        if client_id and not basic:
            form["client_id"] = str(client_id)  # a public client names itself
        async with httpx2.AsyncClient(timeout=TOKEN_TIMEOUT, follow_redirects=False) as client:
            token_url = self.token_url or (tokens or {}).get("token_url")
            if not token_url:
                token_url = str((await discover(client, self.server_url))["token_endpoint"])
                self.token_url = token_url
            try:
                response = await client.post(str(token_url), data=form, **basic)
            except httpx2.HTTPError as exc:
                raise UpstreamAuthError(f"OAuth token endpoint unreachable ({type(exc).__name__})") from exc
        body: dict[str, Any] = {}
        with contextlib.suppress(ValueError):  # an error page instead of JSON: the status tells
            parsed = response.json()
            body = parsed if isinstance(parsed, dict) else {}
        if response.status_code != 200 or "access_token" not in body:
            error = body.get("error", f"HTTP {response.status_code}")
            what = "refreshing the token" if form["grant_type"] == "refresh_token" else "getting a token"
            hint = (
                f"; sign in again: toolmux upstream login {self.name}"
                if form["grant_type"] == "refresh_token"
                else f"; check mcpServers.{self.name}.oauth client_id and client_secret"
            )
            raise UpstreamAuthError(f"OAuth {what} for {self.name} failed: {error}{hint}")
        renewed = {
            **(tokens or {}),
            "access_token": body["access_token"],
            "expires_at": time.time() + float(body.get("expires_in", 3600)),
            "token_url": token_url,
        }
        if body.get("refresh_token"):
            renewed["refresh_token"] = body["refresh_token"]
        return renewed
