"""The hub signs in to a remote MCP server that accepts only OAuth access tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from aggregator.oauth.upstream.vault import TOKENS_DIR, TokenVault
from tests.aggregator.hubkit import RunningHub, running_hub
from tests.aggregator.oauth.protected_upstream import CLIENT_ID, CLIENT_SECRET, ProtectedUpstream
from tests.support.asgi import bound_socket, serve_asgi

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def protected_upstream() -> AsyncIterator[ProtectedUpstream]:
    fake = ProtectedUpstream()
    sock = bound_socket()
    fake.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with serve_asgi(fake.app(), sock=sock):
        yield fake


@asynccontextmanager
async def hub_mounting(tmp_path: Path, fake: ProtectedUpstream, oauth: dict[str, Any]) -> AsyncIterator[RunningHub]:
    remote = {"url": f"{fake.base}/mcp", "protocol": "legacy", "transport": "streamable-http", "oauth": oauth}
    async with running_hub(tmp_path, {"remote": remote}, builtins=[]) as hub:
        yield hub


async def echo(hub: RunningHub, text: str) -> str:
    async with hub.client() as client:
        result = await client.call_tool("remote-echo", {"text": text})
    block = result.content[0]
    assert result.is_error is not True
    return str(getattr(block, "text", ""))


async def test_client_credentials_sign_in_by_discovery_and_survive_a_token_expiry(tmp_path: Path) -> None:
    async with protected_upstream() as fake:
        oauth = {"grant": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scope": "mcp"}
        async with hub_mounting(tmp_path, fake, oauth) as hub:
            assert await echo(hub, "one") == "echo one"
            assert [r["grant_type"] for r in fake.token_requests] == ["client_credentials"]
            assert fake.token_requests[0]["resource"] == f"{fake.base}/mcp"  # RFC 8707
            fake.expire_access_tokens()  # the server forgets them before their announced expiry
            assert await echo(hub, "two") == "echo two"
            assert len(fake.token_requests) == 2 and fake.refused >= 1
        stored = list((tmp_path / "data" / TOKENS_DIR).iterdir())
        assert len(stored) == 1
        at_rest = stored[0].read_bytes()
        assert fake.issued and not any(token.encode() in at_rest for token in fake.issued)  # encrypted at rest
        assert TokenVault(tmp_path / "data").load("remote") is not None


async def test_stored_sign_in_is_refreshed_and_a_revoked_refresh_token_marks_the_server_down(tmp_path: Path) -> None:
    async with protected_upstream() as fake:
        # What `toolmux upstream login remote` leaves behind: an expired access token and a refresh token.
        TokenVault(tmp_path / "data").save(
            "remote",
            {"access_token": "old", "expires_at": 0, "refresh_token": fake.issue_refresh_token(), "client_id": "cli"},
        )
        async with hub_mounting(tmp_path, fake, {"grant": "authorization_code"}) as hub:
            assert await echo(hub, "one") == "echo one"
            assert [r["grant_type"] for r in fake.token_requests] == ["refresh_token"]
            fake.revoke_refresh_tokens()
            fake.expire_access_tokens()
            async with hub.client() as client:
                with pytest.raises(MCPError):
                    await client.call_tool("remote-echo", {"text": "two"})
            with anyio.fail_after(15):
                # The supervisor offers no "went down" event to wait on.
                while "remote" in hub.hub.upstreams and hub.hub.upstreams["remote"].is_ready:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            server = hub.hub.health(deep=False)["servers"]["remote"]
        assert server["state"] != "ready"
        assert "toolmux upstream login remote" in server["reason"]
