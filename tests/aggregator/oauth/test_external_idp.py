"""toolmux as a protected resource with an external OpenID Connect provider: real JWKS, real JWTs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from joserfc.jwk import RSAKey
from mcp.shared.exceptions import MCPError

from aggregator.oauth.jwt_verifier import JwtVerifier
from aggregator.protocol.jsonrpc import INVALID_PARAMS
from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub
from tests.support.oidc import FakeOidcProvider, running_oidc_provider

pytestmark = pytest.mark.anyio

SCOPES = {"tools": ["*"], "echo": ["probe-echo"]}


@asynccontextmanager
async def hub_behind(tmp_path: Path) -> AsyncIterator[tuple[RunningHub, FakeOidcProvider]]:
    async with running_oidc_provider() as idp:
        oauth = {"mode": "external", "issuer": idp.issuer, "scopes": SCOPES}
        async with running_hub(tmp_path, {"probe": probe()}, builtins=[], oauth=oauth) as hub:
            yield hub, idp


async def post_initialize(hub: RunningHub, token: str | None) -> httpx2.Response:
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    async with httpx2.AsyncClient() as client:
        return await client.post(hub.mcp_url, json=body, headers=headers)


async def tool_names(hub: RunningHub, token: str) -> set[str]:
    async with hub.client(token) as client:
        return {tool.name for tool in await client.list_tools()}


async def test_a_401_points_to_the_protected_resource_metadata_that_names_the_provider(tmp_path: Path) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        refused = await post_initialize(hub, None)
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{hub.url}/.well-known/oauth-protected-resource/mcp"' in challenge
        async with httpx2.AsyncClient() as client:
            document = (await client.get(f"{hub.url}/.well-known/oauth-protected-resource/mcp")).json()
            toolset = (await client.get(f"{hub.url}/.well-known/oauth-protected-resource/mcp/research")).json()
            root = (await client.get(f"{hub.url}/.well-known/oauth-protected-resource")).json()
            elsewhere = await client.get(f"{hub.url}/.well-known/oauth-protected-resource/v1/models")
        assert document["resource"] == f"{hub.url}/mcp"
        assert document["authorization_servers"] == [idp.issuer]
        assert set(document["scopes_supported"]) == set(SCOPES)
        assert toolset["resource"] == f"{hub.url}/mcp/research"
        assert root["resource"] == hub.url
        assert elsewhere.status_code == 404


async def test_a_valid_token_of_the_provider_lists_and_calls_tools(tmp_path: Path) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        for alg in ("RS256", "ES256"):
            token = idp.token(audience=f"{hub.url}/mcp", alg=alg)
            assert "probe-echo" in await tool_names(hub, token)
            async with hub.client(token) as client:
                result = await client.call_tool("probe-echo", {"text": "hi"})
            assert result.is_error is not True


async def test_a_tokens_scopes_narrow_its_tools_like_a_keys_globs(tmp_path: Path) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        narrow = idp.token(audience=f"{hub.url}/mcp", scope="echo")
        assert await tool_names(hub, narrow) == {"probe-echo"}
        unmapped = idp.token(audience=f"{hub.url}/mcp", scope="openid profile")
        assert await tool_names(hub, unmapped) == set()
        async with hub.client(narrow) as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("probe-pid", {})
        assert refused.value.code == INVALID_PARAMS  # out of scope reads exactly like an unknown tool


async def test_tokens_for_another_audience_or_issuer_expired_or_forged_are_refused_with_a_challenge(
    tmp_path: Path,
) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        resource = f"{hub.url}/mcp"
        impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})  # same key id, another key
        bad = {
            "wrong audience": idp.token(audience="http://other.example/mcp"),
            "wrong issuer": idp.token(audience=resource, issuer="http://evil.example"),
            "expired": idp.token(audience=resource, expires_in=-3600),
            "bad signature": idp.token(audience=resource, key=impostor),
            "not a jwt": "abc.def.ghi",
        }
        for why, token in bad.items():
            response = await post_initialize(hub, token)
            assert response.status_code == 401, why
            assert "resource_metadata=" in response.headers["www-authenticate"], why
        assert (await post_initialize(hub, idp.token(audience=resource))).status_code == 200


async def test_static_keys_keep_working_beside_oauth_and_facades_challenge_too(tmp_path: Path) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        assert (await post_initialize(hub, MASTER_KEY)).status_code == 200
        async with httpx2.AsyncClient() as client:
            facade = await client.get(f"{hub.url}/v1/models", headers={"authorization": "Bearer nope"})
            with_token = await client.get(
                f"{hub.url}/health", headers={"authorization": f"Bearer {idp.token(audience=f'{hub.url}/mcp')}"}
            )
        assert facade.status_code == 401
        root_metadata = f'resource_metadata="{hub.url}/.well-known/oauth-protected-resource"'
        assert root_metadata in facade.headers["www-authenticate"]
        assert with_token.status_code == 200


async def test_a_key_rotated_at_the_provider_is_fetched_again_and_then_accepted(tmp_path: Path) -> None:
    async with hub_behind(tmp_path) as (hub, idp):
        fetched = idp.jwks_requests
        idp.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig", "alg": "RS256"})
        token = idp.token(audience=f"{hub.url}/mcp")
        verifier = hub.app.oauth.check if hub.app.oauth else None
        assert isinstance(verifier, JwtVerifier)
        refreshed = verifier.refreshed
        assert (await post_initialize(hub, token)).status_code == 401  # unknown key id: wakes a refetch
        with anyio.fail_after(30):
            await refreshed.wait()
        assert idp.jwks_requests > fetched
        assert (await post_initialize(hub, token)).status_code == 200
