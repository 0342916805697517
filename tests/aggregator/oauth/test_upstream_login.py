"""`toolmux upstream login` against a real authorization server: another toolmux hub in builtin mode."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from aggregator.oauth.config import UpstreamOAuth
from aggregator.oauth.upstream.login import login
from aggregator.oauth.upstream.vault import TokenVault
from aggregator.protocol.jsonrpc import UPSTREAM_UNAVAILABLE
from tests.aggregator.hubkit import MASTER_KEY, probe, running_hub
from tests.aggregator.oauth.consenting_user import hidden_fields

pytestmark = pytest.mark.anyio


async def consent_in_a_browser(url: str) -> None:
    """Open the link, approve with the admin key, follow the redirect to the loopback listener."""
    async with httpx2.AsyncClient() as http:
        page = await http.get(url)
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text)
        ticked = [v for v in page.text.split('name="grant" value="')[1:]]
        grant = [v.split('"')[0] for v in ticked]
        answer = await http.post(
            str(page.url), data={**fields, "grant": grant, "secret": MASTER_KEY, "decision": "approve"}
        )
        assert answer.status_code == 302
        caught = await http.get(answer.headers["location"])
        assert caught.status_code == 200


async def test_a_hub_signs_in_once_calls_tools_and_reports_a_revoked_sign_in(tmp_path: Path) -> None:
    oauth_a = {"mode": "builtin", "scopes": {"tools": ["*"]}}
    async with running_hub(tmp_path / "a", {"probe": probe()}, builtins=[], oauth=oauth_a) as upstream:
        data_b = tmp_path / "b" / "data"
        tokens = await login(
            "remote",
            f"{upstream.url}/mcp",
            UpstreamOAuth(grant="authorization_code"),
            data_b,
            open_url=consent_in_a_browser,
        )
        assert tokens["refresh_token"] and TokenVault(data_b).load("remote") == tokens
        remote = {"url": f"{upstream.url}/mcp", "oauth": {"grant": "authorization_code"}}
        async with running_hub(tmp_path / "b", {"remote": remote}, builtins=[]) as hub:
            async with hub.client() as client:
                result = await client.call_tool("remote-probe-echo", {"text": "hi"})
            assert result.is_error is not True
            current = TokenVault(data_b).load("remote")
            assert current is not None
            async with httpx2.AsyncClient() as http:  # the person withdraws the sign-in at the server
                revoked = await http.post(
                    f"{upstream.url}/oauth/revoke",
                    data={"token": current["refresh_token"], "client_id": current["client_id"]},
                )
            assert revoked.status_code == 200
            async with hub.client() as client:
                with pytest.raises(MCPError) as failed:
                    await client.call_tool("remote-probe-echo", {"text": "again"})
            assert failed.value.code == UPSTREAM_UNAVAILABLE
            with anyio.fail_after(15):
                # The supervisor offers no "went down" event to wait on.
                while hub.hub.upstreams["remote"].is_ready:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            server = hub.hub.health(deep=False)["servers"]["remote"]
        assert "toolmux upstream login remote" in server["reason"]
