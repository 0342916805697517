"""A key scoped to some tools learns nothing of the servers outside its scope, on any route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub

pytestmark = pytest.mark.anyio

READER = "reader-key-0123456789"
SCRAPER = "scraper-key-0123456789"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    keys = [
        {"name": "reader", "key": READER, "tools": ["alpha-echo"]},
        {"name": "scraper", "key": SCRAPER, "tools": [], "scopes": ["metrics"]},
    ]
    servers = {"alpha": probe("alpha"), "hidden": probe("hidden")}
    async with running_hub(tmp_path, servers, auth={"keys": keys}) as running:
        async with running.client() as client:
            await client.call("hidden-echo", text="counted")  # puts the hidden server's name in the metrics
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_scoped_key_is_refused_the_metrics(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        scoped = await http.get(f"{hub.url}/metrics", headers=bearer(READER))
        scraper = await http.get(f"{hub.url}/metrics", headers=bearer(SCRAPER))
    assert scoped.status_code == 403 and scoped.json()["error"]["code"] == "forbidden"
    assert "hidden" not in scoped.text
    assert scraper.status_code == 200 and 'tool="hidden-echo"' in scraper.text


async def test_a_scoped_key_gets_only_the_bare_status_from_health(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        scoped = await http.get(f"{hub.url}/health", headers=bearer(READER))
        scraper = await http.get(f"{hub.url}/health", headers=bearer(SCRAPER))
    assert scoped.status_code == 200 and set(scoped.json()) == {"status", "version"}
    assert "hidden" not in scoped.text and "alpha" not in scoped.text
    assert set(scraper.json()["servers"]) == {"alpha", "hidden"}


async def test_initialize_instructions_name_only_the_servers_a_key_reaches(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        scoped = await http.post(hub.mcp_url, json=INIT, headers=bearer(READER))
        master = await http.post(hub.mcp_url, json=INIT, headers=bearer(MASTER_KEY))
    instructions = scoped.json()["result"]["instructions"]
    assert "[alpha]" in instructions and "hidden" not in scoped.text
    assert "[hidden]" in master.json()["result"]["instructions"]


async def test_server_discover_names_only_the_servers_a_key_reaches(hub: RunningHub) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    discover = {"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": meta}}
    headers = {**bearer(READER), "MCP-Protocol-Version": "2026-07-28", "MCP-Method": "server/discover"}
    async with httpx2.AsyncClient() as http:
        scoped = await http.post(hub.mcp_url, json=discover, headers=headers)
    assert scoped.status_code == 200, scoped.text
    assert "[alpha]" in scoped.text and "hidden" not in scoped.text


async def test_listings_and_errors_never_name_an_out_of_scope_server(hub: RunningHub) -> None:
    async with hub.client(READER) as client:
        tools = await client.list_tools()
        prompts = await client.client.session.list_prompts()
        resources = await client.client.session.list_resources()
        templates = await client.client.session.list_resource_templates()
        with pytest.raises(Exception) as unknown:
            await client.call_tool("hidden-ech", {"text": "x"})
    assert [t.name for t in tools] == ["alpha-echo"]
    seen = repr(prompts) + repr(resources) + repr(templates) + str(unknown.value)
    assert "hidden" not in seen.replace("hidden-ech'", "")
