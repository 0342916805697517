"""The built-in authorization server, driven by the official MCP Python SDK's OAuth client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub
from tests.aggregator.oauth.consenting_user import ConsentingUser, MemoryTokens, hidden_fields

pytestmark = pytest.mark.anyio

SCOPES = {"tools": ["*"], "echo": ["probe-echo"]}
REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the test reads the redirect itself


@asynccontextmanager
async def builtin_hub(tmp_path: Path, **oauth: Any) -> AsyncIterator[RunningHub]:
    section = {"mode": "builtin", "scopes": SCOPES, "users": [{"name": "ada", "password": "correct horse battery"}]}
    async with running_hub(tmp_path, {"probe": probe()}, builtins=[], oauth={**section, **oauth}) as hub:
        yield hub


def provider(hub: RunningHub, user: ConsentingUser, tokens: MemoryTokens) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="sdk test client",
        redirect_uris=[REDIRECT],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        f"{hub.url}/mcp",
        metadata,
        tokens,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )


@asynccontextmanager
async def sdk_client(hub: RunningHub, auth: OAuthClientProvider) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=30) as http,
        Client(streamable_http_client(f"{hub.url}/mcp", http_client=http)) as client,
    ):
        yield client


async def names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def initialize_status(hub: RunningHub, token: str) -> int:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{hub.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
            headers={"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"},
        )
    return response.status_code


async def test_an_sdk_client_discovers_registers_consents_and_calls_tools(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub:
        user, tokens = ConsentingUser(MASTER_KEY), MemoryTokens()
        async with sdk_client(hub, provider(hub, user, tokens)) as client:
            assert "probe-echo" in await names(client)
            result = await client.call_tool("probe-echo", {"text": "hi"})
            assert result.is_error is not True
        assert tokens.client is not None and tokens.client.client_id  # registered (RFC 7591)
        assert tokens.tokens is not None and tokens.tokens.refresh_token
        assert "sdk test client" in user.page and "probe-echo" in user.page  # the consent page names what is granted
        assert urlsplit(user.location).netloc == "127.0.0.1:9"


async def test_a_token_with_a_narrow_scope_sees_only_that_scopes_tools(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub:
        user, tokens = ConsentingUser("correct horse battery", username="ada", grant=["echo"]), MemoryTokens()
        async with sdk_client(hub, provider(hub, user, tokens)) as client:
            assert await names(client) == {"probe-echo"}
        assert tokens.tokens is not None and tokens.tokens.scope == "echo"


async def test_an_expired_access_token_is_refreshed_and_the_old_refresh_token_is_spent(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub:
        user, tokens = ConsentingUser(MASTER_KEY), MemoryTokens()
        auth = provider(hub, user, tokens)
        async with sdk_client(hub, auth) as client:
            await names(client)
        assert tokens.tokens is not None and tokens.client is not None
        first_access, first_refresh = tokens.tokens.access_token, tokens.tokens.refresh_token
        auth.context.token_expiry_time = time.time() - 1  # the client believes its token has expired
        async with sdk_client(hub, auth) as client:
            assert "probe-echo" in await names(client)
        assert tokens.tokens.access_token != first_access
        assert tokens.tokens.refresh_token not in (None, first_refresh)  # rotated
        async with httpx2.AsyncClient() as http:
            replay = await http.post(
                f"{hub.url}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": first_refresh,
                    "client_id": tokens.client.client_id,
                },
            )
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


async def test_a_revoked_token_is_refused_at_once(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub:
        user, tokens = ConsentingUser(MASTER_KEY), MemoryTokens()
        async with sdk_client(hub, provider(hub, user, tokens)) as client:
            await names(client)
        assert tokens.tokens is not None and tokens.client is not None
        access = tokens.tokens.access_token
        assert await initialize_status(hub, access) == 200
        async with httpx2.AsyncClient() as http:
            revoked = await http.post(
                f"{hub.url}/oauth/revoke", data={"token": access, "client_id": tokens.client.client_id}
            )
            assert revoked.status_code == 200
            refresh = await http.post(
                f"{hub.url}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens.tokens.refresh_token,
                    "client_id": tokens.client.client_id,
                },
            )
        assert await initialize_status(hub, access) == 401
        assert refresh.status_code == 400  # the whole authorization went, its refresh token too


async def authorize_url(hub: RunningHub, http: httpx2.AsyncClient, **overrides: str) -> tuple[str, dict[str, str]]:
    registered = await http.post(
        f"{hub.url}/oauth/register",
        json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "client_name": "raw"},
    )
    assert registered.status_code == 201, registered.text
    params = {
        "response_type": "code",
        "client_id": registered.json()["client_id"],
        "redirect_uri": REDIRECT,
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "resource": f"{hub.url}/mcp",
        **overrides,
    }
    return f"{hub.url}/oauth/authorize?{urlencode(params)}", params


def redirect_query(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


async def test_a_code_for_another_resource_or_without_s256_pkce_is_refused(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub, httpx2.AsyncClient() as http:
        other, _ = await authorize_url(hub, http, resource="http://other.example/mcp")
        assert redirect_query(await http.get(other))["error"] == "invalid_target"
        plain, _ = await authorize_url(hub, http, code_challenge_method="plain")
        assert redirect_query(await http.get(plain))["error"] == "invalid_request"


async def test_the_consent_form_needs_its_csrf_token_and_a_valid_credential(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub, httpx2.AsyncClient() as http:
        url, _ = await authorize_url(hub, http)
        page = await http.get(url)
        assert page.status_code == 200
        fields = hidden_fields(page.text)
        forged = await http.post(
            f"{hub.url}/oauth/authorize", data={**fields, "secret": MASTER_KEY, "decision": "approve", "csrf": "1.x"}
        )
        assert forged.status_code == 400 and forged.json()["error"] == "invalid_request"
        wrong = await http.post(
            f"{hub.url}/oauth/authorize", data={**fields, "secret": "not-the-key", "decision": "approve"}
        )
        assert wrong.status_code == 403 and "location" not in wrong.headers
        denied = await http.post(f"{hub.url}/oauth/authorize", data={**fields, "decision": "deny"})
        assert redirect_query(denied)["error"] == "access_denied"


async def test_a_confidential_client_can_introspect_tokens_for_replicas(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub:
        user, tokens = ConsentingUser(MASTER_KEY), MemoryTokens()
        async with sdk_client(hub, provider(hub, user, tokens)) as client:
            await names(client)
        assert tokens.tokens is not None
        async with httpx2.AsyncClient() as http:
            replica = (
                await http.post(
                    f"{hub.url}/oauth/register",
                    json={"redirect_uris": [REDIRECT], "client_name": "replica", "grant_types": ["authorization_code"]},
                )
            ).json()
            auth = (replica["client_id"], replica["client_secret"])
            active = await http.post(
                f"{hub.url}/oauth/introspect", data={"token": tokens.tokens.access_token}, auth=auth
            )
            bogus = await http.post(f"{hub.url}/oauth/introspect", data={"token": "tma_nothing"}, auth=auth)
        assert active.json()["active"] is True, active.text
        assert active.json()["aud"] == f"{hub.url}/mcp" and active.json()["sub"] == "master"
        assert bogus.json() == {"active": False}


async def test_the_discovery_documents_describe_the_builtin_server(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub, httpx2.AsyncClient() as http:
        prm = (await http.get(f"{hub.url}/.well-known/oauth-protected-resource/mcp")).json()
        metadata = (await http.get(f"{hub.url}/.well-known/oauth-authorization-server")).json()
    assert prm["authorization_servers"] == [hub.url]
    assert metadata["issuer"] == hub.url
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["registration_endpoint"] == f"{hub.url}/oauth/register"


async def test_scopes_the_hub_does_not_map_are_dropped_not_refused(tmp_path: Path) -> None:
    async with builtin_hub(tmp_path) as hub, httpx2.AsyncClient() as http:
        url, _ = await authorize_url(hub, http, scope="openid echo offline_access")
        page = await http.get(url)
        assert page.status_code == 200
        assert hidden_fields(page.text)["scope"] == "echo"
