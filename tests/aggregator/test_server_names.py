"""A pasted Claude Desktop `mcpServers` block loads whatever its server names look like."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aggregator.hubkit import probe, running_hub

pytestmark = pytest.mark.anyio


async def test_servers_named_like_claude_desktop_ones_serve_their_tools_under_a_clean_prefix(tmp_path: Path) -> None:
    servers = {"brave-search": probe("brave"), "GitHub": probe("gh")}
    async with running_hub(tmp_path, servers) as running, running.client() as hub:
        names = {t.name for t in await hub.list_tools()}
        echoed = await hub.call_tool("brave_search-echo", {"text": "hi"})
    assert {"brave_search-echo", "github-echo"} <= names
    assert echoed.structured_content == {"text": "hi", "server": "brave"}
