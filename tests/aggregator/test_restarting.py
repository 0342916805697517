"""While a child restarts, its tools answer "unavailable: restarting" with a retry hint, not "unknown"
(issue 19, item 9)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from aggregator.protocol import jsonrpc
from aggregator.upstreams.stdio import StdioChannel
from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub

pytestmark = pytest.mark.anyio

# Long enough that the test sees the servers down; the hub is stopped long before they return.
SLOW_RESTART = {"first_delay": 30.0}
BETA_ONLY: dict[str, Any] = {"name": "beta-only", "key": "beta-only-key-0123456789", "tools": ["beta-*"]}


def child_pid(running: RunningHub, server: str) -> int:
    peer = running.hub.upstreams[server]._peer
    assert peer is not None and isinstance(peer.channel, StdioChannel)
    return peer.channel.process.pid


async def test_a_tool_of_a_restarting_child_is_unavailable_with_a_retry_hint_on_mcp_and_facades(tmp_path: Path) -> None:
    servers = {
        "alpha": probe("alpha", restart=SLOW_RESTART),
        "beta": probe("beta"),
        "models": {"mode": "stdio", "restart": SLOW_RESTART},
    }
    async with running_hub(tmp_path, servers, builtins=["models"], auth={"keys": [BETA_ONLY]}) as running:
        async with running.client() as hub:
            for server in ("alpha", "models"):
                os.kill(child_pid(running, server), signal.SIGKILL)
            # Both servers leave the catalog. (Watched in the catalog, not by list changes: the
            # client's notification stream may not be open yet, this early in its session.)
            with anyio.fail_after(60):
                for _ in range(6000):
                    if not (running.hub.catalog.tool("models-chat") or running.hub.catalog.tool("alpha-echo")):
                        break
                    await anyio.sleep(0.01)

            with pytest.raises(MCPError) as raised:
                await hub.call_tool("alpha-echo", {"text": "x"})
            error = raised.value.error
            assert error.code == jsonrpc.UPSTREAM_UNAVAILABLE
            assert isinstance(error.data, dict)
            assert error.data["code"] == "unavailable" and error.data["reason"] == "restarting"
            assert error.data["retryable"] is True and error.data["retry_after"] >= 1
            assert error.data["data"] == {"server": "alpha", "tool": "alpha-echo"}
            # A tool the server never had is still unknown, with the nearest names.
            with pytest.raises(MCPError) as unknown:
                await hub.call_tool("alpha-no_such_tool", {})
            assert unknown.value.error.code == jsonrpc.INVALID_PARAMS

        # A key that may not call alpha's tools learns nothing of them, up or down.
        async with running.client(BETA_ONLY["key"]) as scoped, running.client() as master:
            with pytest.raises(MCPError) as hidden:
                await scoped.call_tool("alpha-echo", {"text": "x"})
            assert hidden.value.error.code == jsonrpc.INVALID_PARAMS
            assert (await master.call("beta-echo", text="still here"))["text"] == "still here"

        async with httpx2.AsyncClient(base_url=running.url) as http:
            listed = await http.get("/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert listed.status_code == 503
        assert int(listed.headers["retry-after"]) >= 1
        assert listed.headers["x-request-id"]
        assert listed.json()["error"]["type"] == "api_error"
