"""A child built-in calls its hub back with one stateless request per call."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.hub import HttpHubCaller
from servers.kit import ToolError
from tests.aggregator.hubkit import MASTER_KEY, running_hub

pytestmark = pytest.mark.anyio


async def test_a_child_stores_and_reads_back_an_object_through_its_hub(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, builtins=["storage"]) as running:
        caller = HttpHubCaller(running.mcp_url, MASTER_KEY)
        stored = await caller.call_tool("storage-put_object", {"bucket": "default", "key": "ü/a.txt", "text": "hi"})
        read = await caller.call_tool("storage-get_object", {"bucket": "default", "key": "ü/a.txt"})
        missing = await caller.call_tool("storage-get_object", {"bucket": "default", "key": "nope"})
        with pytest.raises(ToolError, match="Unknown tool"):
            await caller.call_tool("storage-nothing", {})
    assert stored["structuredContent"]["size"] == 2
    assert read["structuredContent"]["text"] == "hi"
    assert missing["isError"] is True  # tool errors come back as results, for the caller to map


async def test_a_wrong_key_is_a_clear_unavailable_error(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, builtins=["storage"]) as running:
        caller = HttpHubCaller(running.mcp_url, "not-the-key-0000000000")
        with pytest.raises(ToolError) as caught:
            await caller.call_tool("storage-list_buckets", {})
    assert caught.value.code in ("upstream_error", "unavailable")
