"""A remote streamable HTTP server (the everything fixture, a real child process) behind the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from aggregator.config import ServerEntry
from aggregator.upstreams.http import open_http
from tests.aggregator.hubkit import running_hub
from tests.fixtures.everything.process import http_fixture

pytestmark = pytest.mark.anyio

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "toolmux-test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fixture_url() -> AsyncIterator[str]:
    async with http_fixture() as url:
        yield url


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), result
    return block.text


async def test_remote_tools_are_listed_and_called_through_the_hub(tmp_path: Path, fixture_url: str) -> None:
    async with running_hub(tmp_path, {"remote": {"url": fixture_url}}) as hub, hub.client() as client:
        names = {tool.name for tool in await client.list_tools()}
        simple = await client.call_tool("remote-test_simple_text", {})
        health = hub.hub.health(deep=True)["servers"]["remote"]

    assert {"remote-test_simple_text", "remote-test_sampling", "remote-test_tool_with_progress"} <= names
    assert text_of(simple) == "This is a simple text response for testing."
    assert health["state"] == "ready"
    assert health["transport"].startswith("streamable-http: http://127.0.0.1:")


async def test_progress_logs_and_sampling_of_a_remote_call_reach_the_calling_client(
    tmp_path: Path, fixture_url: str
) -> None:
    progress: list[float] = []
    logs: list[Any] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_sampling(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return types.CreateMessageResult(
            role="assistant", model="fake", content=types.TextContent(type="text", text="Paris")
        )

    async with (
        running_hub(tmp_path, {"remote": {"url": fixture_url}}) as hub,
        hub.client(sampling_callback=on_sampling, logging_callback=on_log) as client,
    ):
        with anyio.fail_after(20):
            stepped = await client.call_tool("remote-test_tool_with_progress", {}, progress=on_progress)
            sampled = await client.call_tool("remote-test_sampling", {"prompt": "Capital of France?"})
            logged = await client.call_tool("remote-test_tool_with_logging", {})

    assert progress == [0, 50, 100]
    assert text_of(stepped).startswith("Progress reported")
    assert text_of(sampled) == "LLM response: Paris"
    assert not logged.is_error
    assert len(logs) == 3


async def test_a_call_whose_event_stream_the_server_closes_midway_is_resumed(tmp_path: Path, fixture_url: str) -> None:
    async with running_hub(tmp_path, {"remote": {"url": fixture_url}}) as hub, hub.client() as client:
        with anyio.fail_after(20):
            result = await client.call_tool("remote-test_reconnection", {})

    assert text_of(result) == "Reconnection test completed"


async def test_a_stateless_request_carries_the_routing_headers_the_server_checks(fixture_url: str) -> None:
    entry = ServerEntry(url=fixture_url)
    call = {"name": "test_x_mcp_header", "arguments": {"region": "eu-west-1"}, "_meta": MODERN_META}
    with anyio.fail_after(20):
        async with open_http("remote", entry) as channel:
            await channel.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
            refused = await channel.receive()
            await channel.send(
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
                headers={"Mcp-Param-Region": "eu-west-1"},
            )
            accepted = await channel.receive()

    # The server compares Mcp-Method / Mcp-Name / MCP-Protocol-Version with the body: they passed,
    # and only the Mcp-Param header the tool's schema asks for was missing until the caller gave it.
    assert refused["id"] == 1
    assert refused["error"]["code"] == -32020
    assert "Mcp-Param-Region" in refused["error"]["message"]
    assert accepted["id"] == 2
    assert "eu-west-1" in accepted["result"]["content"][0]["text"]


async def test_a_stateless_remote_gets_the_tool_parameter_headers_it_requires(tmp_path: Path, fixture_url: str) -> None:
    async with running_hub(tmp_path, {"remote": {"url": fixture_url}}) as hub, hub.client() as client:
        assert hub.hub.upstreams["remote"].modern
        result = await client.call_tool("remote-test_x_mcp_header", {"region": "eu-west-1"})
    # The fixture refuses a tools/call whose Mcp-Param-Region header is missing or differs.
    assert not result.is_error
    assert result.content[0].text == "region=eu-west-1"  # type: ignore[union-attr]
