"""The HTTP facades run inside the real hub: same keys, same dispatch, same metrics as MCP."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.aggregator.hubkit import MASTER_KEY, running_hub

pytestmark = pytest.mark.anyio

READER = {"name": "reader", "key": "reader-key-0123456789", "tools": ["demo-*"]}


async def test_storage_http_api_and_mcp_tools_share_one_store_and_the_hub_keys(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, builtins=["storage"]) as running:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        async with httpx2.AsyncClient(base_url=running.url) as http:
            put = await http.put("/storage/default/notes/a.txt", content=b"written over HTTP", headers=auth)
            assert put.status_code in (200, 201), put.text
        async with running.client() as hub:
            got = await hub.call("storage-get_object", bucket="default", key="notes/a.txt")
        assert got["text"] == "written over HTTP"


async def test_openai_facade_lists_models_and_refuses_a_missing_key_like_openai(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path, {}, builtins=["models"]) as running,
        httpx2.AsyncClient(base_url=running.url) as http,
    ):
        anonymous = await http.get("/v1/models")
        listed = await http.get("/v1/models", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    assert listed.status_code == 200 and listed.json()["object"] == "list"


async def test_a_scoped_key_cannot_reach_other_servers_tools_through_a_facade(tmp_path: Path) -> None:
    scoped = running_hub(tmp_path, {}, builtins=["models", "demo"], auth={"keys": [READER]})
    async with scoped as running, httpx2.AsyncClient(base_url=running.url) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "main", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {READER['key']}"},
        )
    assert response.status_code == 404
    assert "error" in response.json()
