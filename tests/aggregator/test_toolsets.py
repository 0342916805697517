"""Toolsets and lazy mode through the real faces: HTTP paths on loopback with probe children, the
`--toolset` stdio flag, keys with a default toolset, and call_tool's progress and cancellation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from tests.aggregator.hubkit import MASTER_KEY, PROJECT_ROOT, RunningHub, probe, running_hub
from tests.aggregator.test_http_face import INIT, wait_for_file

pytestmark = pytest.mark.anyio

READER: dict[str, Any] = {"name": "reader", "key": "reader-key-0123456789", "tools": ["alpha-echo", "alpha-pid"]}
WIDE: dict[str, Any] = {"name": "wide", "key": "wide-key-01234567890", "tools": ["alpha-echo"], "toolset": "everything"}
LAZY: dict[str, Any] = {"name": "lazy", "key": "lazy-key-01234567890", "lazy": True}
TOOLSETS: dict[str, Any] = {
    "echoes": {"tools": ["*-echo"]},
    "alpha": {"servers": {"alpha": ["*"]}},
    "everything": {"tools": ["*"]},
    "finder": {"servers": {"alpha": ["slow", "echo"]}, "lazy": True},
}


@pytest.fixture
async def hub(tmp_path: Path) -> Any:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    servers = {"alpha": probe("alpha", marker_dir), "beta": probe("beta")}
    async with running_hub(tmp_path, servers, auth={"keys": [READER, WIDE, LAZY]}, toolsets=TOOLSETS) as running:
        running.marker_dir = marker_dir  # type: ignore[attr-defined]
        yield running


def at(hub: RunningHub, toolset: str, key: str = MASTER_KEY, slash: bool = True) -> Any:
    from clients.hub import HubClient

    return HubClient.http(f"{hub.url}/mcp/{toolset}{'/' if slash else ''}", key)


@pytest.mark.parametrize("slash", [True, False])
async def test_a_toolset_path_narrows_the_listing_and_refuses_calls_outside_it(hub: RunningHub, slash: bool) -> None:
    async with at(hub, "echoes", slash=slash) as client:
        names = sorted(t.name for t in await client.list_tools())
        assert await client.call("beta-echo", text="in") == {"text": "in", "server": "beta"}
        with pytest.raises(MCPError) as outside:
            await client.call("alpha-pid")
        with pytest.raises(MCPError) as unknown:
            await client.call("alpha-nothing")
    assert names == ["alpha-echo", "beta-echo"]
    assert outside.value.error.code == unknown.value.error.code


async def test_per_server_picks_select_that_servers_tools(hub: RunningHub) -> None:
    async with at(hub, "alpha") as client:
        names = {t.name for t in await client.list_tools()}
    assert names and all(n.startswith("alpha-") for n in names)


async def test_a_toolset_never_widens_a_scoped_key(hub: RunningHub) -> None:
    async with at(hub, "everything", READER["key"]) as client:
        names = sorted(t.name for t in await client.list_tools())
        with pytest.raises(MCPError):
            await client.call("beta-echo", text="no")
    async with at(hub, "echoes", READER["key"]) as client:
        narrowed = sorted(t.name for t in await client.list_tools())
    assert names == ["alpha-echo", "alpha-pid"]
    assert narrowed == ["alpha-echo"]


async def test_a_keys_default_toolset_applies_on_the_plain_path_and_its_scope_still_wins(hub: RunningHub) -> None:
    async with hub.client(WIDE["key"]) as client:
        names = [t.name for t in await client.list_tools()]
    assert names == ["alpha-echo"]


async def test_an_unknown_toolset_path_is_a_json_404_with_the_request_id(hub: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{hub.url}/mcp/nope/",
            json=INIT,
            headers={"Authorization": f"Bearer {MASTER_KEY}", "x-request-id": "req-77"},
        )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-77"
    assert response.json()["error"]["data"] == {"toolset": "nope", "requestId": "req-77"}


async def test_a_lazy_toolset_lists_three_tools_and_finds_calls_and_describes_its_own(hub: RunningHub) -> None:
    async with at(hub, "finder") as client:
        names = sorted(t.name for t in await client.list_tools())
        found = await client.call("search_tools", query="echo the text back", limit=None)
        described = await client.call("describe_tool", names=["alpha-echo"])
        echoed = await client.call("call_tool", name="alpha-echo", arguments={"text": "hi"})
        as_string = await client.call("call_tool", name="alpha-echo", arguments='{"text": "s"}')
        with pytest.raises(MCPError) as outside:
            await client.call("call_tool", name="beta-echo", arguments={})
    assert names == ["call_tool", "describe_tool", "search_tools"]
    assert found["tools"][0]["name"] == "alpha-echo"
    assert {t["name"] for t in found["tools"]} <= {"alpha-echo", "alpha-slow"}
    assert described["tools"][0]["inputSchema"]["properties"]["text"]["type"] == "string"
    assert echoed == {"text": "hi", "server": "alpha"}
    assert as_string == {"text": "s", "server": "alpha"}
    assert "alpha-echo" in outside.value.error.data["nearest"]


async def test_a_lazy_key_searches_only_what_its_scope_allows(hub: RunningHub) -> None:
    async with hub.client(LAZY["key"]) as client:
        names = sorted(t.name for t in await client.list_tools())
        found = await client.call("search_tools", query="echo", limit=5)
        resources = (await client.client.list_resources()).resources
        prompts = (await client.client.list_prompts()).prompts
    assert names == ["call_tool", "describe_tool", "search_tools"]
    assert resources and prompts  # lazy mode changes the tools only
    assert {t["name"] for t in found["tools"]} == {"alpha-echo", "beta-echo"}


async def test_call_tool_carries_progress_and_cancellation_to_the_inner_tool(hub: RunningHub) -> None:
    seen: list[float] = []
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        started.set()

    async with at(hub, "finder") as client:
        result = await client.call_tool(
            "call_tool", {"name": "alpha-slow", "arguments": {"steps": 3, "interval": 0.01}}, progress=on_progress
        )
        assert not result.is_error and seen == [1, 2, 3]
        started = anyio.Event()
        with anyio.move_on_after(20) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: client.call_tool(
                        "call_tool",
                        {"name": "alpha-slow", "arguments": {"steps": 1000, "interval": 0.05, "tag": "lazy"}},
                        progress=on_progress,
                    )
                )
                await started.wait()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        await wait_for_file(hub.marker_dir / "cancelled-lazy")  # type: ignore[attr-defined]


async def test_a_toolset_session_hears_list_changed_only_when_its_view_changed(hub: RunningHub, tmp_path: Path) -> None:
    from aggregator.config import parse
    from aggregator.front.session import FrontSession
    from aggregator.principal import MASTER
    from aggregator.protocol.eras import LATEST_LEGACY
    from tests.aggregator.hubkit import hub_config

    heard: dict[str, list[dict[str, Any]]] = {"echoes": [], "alpha": [], "plain": []}
    for name, got in heard.items():
        toolset = hub.hub.keys.toolsets.get(name)
        session = FrontSession(principal=MASTER.in_toolset(toolset), protocol_version=LATEST_LEGACY)
        session.initialized = True

        async def sink(message: dict[str, Any], into: list[dict[str, Any]] = got) -> None:
            into.append(message)

        session.unsolicited = sink
        hub.app.core.front.sessions.add(session)
    # beta leaves: the echoes view loses beta-echo; the alpha view is untouched.
    servers = {"alpha": hub.hub.config.servers["alpha"].model_dump(mode="json", by_alias=True, exclude_none=True)}
    config = parse(hub_config(tmp_path, servers, auth={"keys": [READER, WIDE, LAZY]}, toolsets=TOOLSETS), "<t>")
    config.server = hub.hub.config.server
    await hub.hub.reload(config)
    tools_changed = {
        name: [m for m in got if m["method"] == "notifications/tools/list_changed"] for name, got in heard.items()
    }
    assert (len(tools_changed["echoes"]), len(tools_changed["plain"]), tools_changed["alpha"]) == (1, 1, [])


def test_stdio_with_a_toolset_serves_only_that_toolset(tmp_path: Path) -> None:
    config = tmp_path / "toolmux.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "builtins": [],
                "server": {"data_dir": str(tmp_path / "data")},
                "auth": {"master_key": MASTER_KEY},
                "mcpServers": {"alpha": probe("alpha"), "beta": probe("beta")},
                "toolsets": TOOLSETS,
            }
        )
    )

    async def main() -> tuple[list[str], int, int]:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "aggregator", "stdio", "--config", str(config), "--toolset", "echoes"],
            cwd=str(PROJECT_ROOT),
        )
        with (tmp_path / "stderr.log").open("w") as err, anyio.fail_after(60):
            async with Client(stdio_client(params, errlog=err), mode="legacy") as client:
                names = sorted(t.name for t in (await client.list_tools()).tools)
                try:
                    await client.call_tool("alpha-pid", {})
                    outside = 0
                except MCPError as exc:
                    outside = exc.error.code
                try:
                    await client.call_tool("alpha-zzz", {})
                    unknown = 0
                except MCPError as exc:
                    unknown = exc.error.code
        return names, outside, unknown

    names, outside, unknown = anyio.run(main)
    assert names == ["alpha-echo", "beta-echo"]
    assert outside == unknown != 0


async def test_tools_size_prints_the_bytes_and_tokens_a_toolset_client_receives(hub: RunningHub) -> None:
    async def size_of(*extra: str) -> tuple[int, int, int]:
        command = [sys.executable, "-m", "aggregator", "tools", "--url", hub.mcp_url, "--key", MASTER_KEY, "--size"]
        result = await anyio.run_process([*command, *extra], cwd=str(PROJECT_ROOT), check=True)
        words = result.stdout.decode().split()  # "<n> tools, <bytes> bytes, ~<tokens> tokens"
        return int(words[0]), int(words[2]), int(words[4].lstrip("~"))

    with anyio.fail_after(60):
        full = await size_of()
        echoes = await size_of("--toolset", "echoes")
        lazy_view = await size_of("--toolset", "finder")
    assert echoes[0] == 2 and lazy_view[0] == 3
    assert echoes[1] < full[1] and lazy_view[1] < 2048
    assert echoes[2] == (echoes[1] + 3) // 4


async def test_a_keys_default_toolset_is_its_mcp_view_only_and_a_path_replaces_it(hub: RunningHub) -> None:
    keys = hub.hub.keys
    wide = keys.principal_for(WIDE["key"])
    assert wide is not None and wide.toolset is None  # facades keep the key's own scope
    assert keys.mcp_view(wide).toolset == keys.toolsets["everything"]
    assert keys.mcp_view(wide, keys.toolsets["echoes"]).toolset == keys.toolsets["echoes"]


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"toolsets": {"Bad Name": {"tools": ["*"]}}}, "Bad Name"),
        ({"toolsets": {"empty": {}}}, "toolsets.empty"),
        ({"auth": {"keys": [{**READER, "toolset": "missing"}]}}, "missing"),
    ],
)
def test_a_bad_toolset_config_is_refused_naming_it(section: dict[str, Any], named: str) -> None:
    from aggregator.config import ConfigError, parse

    with pytest.raises(ConfigError) as refused:
        parse({"builtins": [], **section}, "t.yaml")
    assert named in str(refused.value)
