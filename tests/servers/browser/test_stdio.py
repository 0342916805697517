"""The browser server as its own process: `python -m aggregator server browser --stdio` driven by an MCP client."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters

from tests.support.browser_site import Site

pytestmark = pytest.mark.anyio


async def test_browser_server_runs_as_a_stdio_child(site: Site, tmp_path: Path) -> None:
    config_file = tmp_path / "browser.yaml"
    config_file.write_text(yaml.safe_dump({"navigation": {"allow_hosts": ["127.0.0.1"]}}))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "server", "browser", "--stdio", "--config", str(config_file)],
        env={"TOOLMUX_DATA_DIR": str(tmp_path / "data")},
    )
    with anyio.fail_after(60):
        async with Client(params, mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"goto", "snapshot", "click", "fill", "screenshot", "run_script", "tabs"} <= tools
            opened = await client.call_tool("goto", {"url": f"{site.url}/form", "session": "s1"})
            assert opened.structured_content is not None and opened.structured_content["title"] == "Sign up"
            snap = await client.call_tool("snapshot", {"session": "s1"})
            assert snap.structured_content is not None
            assert 'button "Create account"' in snap.structured_content["snapshot"]
            shot = await client.call_tool("screenshot", {"session": "s1"})
            assert [c.type for c in shot.content] == ["text", "image"]  # alone: no storage, the PNG is inline
            refused = await client.call_tool("goto", {"url": "http://169.254.169.254/", "session": "s1"})
            assert refused.is_error
