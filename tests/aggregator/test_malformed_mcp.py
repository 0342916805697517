"""Malformed MCP requests get a clean JSON-RPC error carrying their id, never a 500 (issue 19, item 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from aggregator.protocol import jsonrpc
from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub

pytestmark = pytest.mark.anyio

JSON_HEADERS = {
    "authorization": f"Bearer {MASTER_KEY}",
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
}
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with running_hub(tmp_path, {"alpha": probe("alpha")}) as running:
        yield running


async def post_modern(client: httpx2.AsyncClient, hub: RunningHub, message: dict[str, Any]) -> httpx2.Response:
    headers = {**JSON_HEADERS, "mcp-protocol-version": "2026-07-28", "mcp-method": message["method"]}
    return await client.post(hub.mcp_url, json=message, headers=headers)


async def open_session(client: httpx2.AsyncClient, hub: RunningHub) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = await client.post(hub.mcp_url, json=init, headers=JSON_HEADERS)
    return {**JSON_HEADERS, "mcp-session-id": response.headers["mcp-session-id"]}


BAD_LISTEN_PARAMS: list[dict[str, Any]] = [
    {},
    {"notifications": 3},
    {"notifications": None},
    {"notifications": {"resourceSubscriptions": [1]}},
]


async def test_a_stateless_listen_with_bad_notifications_is_invalid_params_with_its_id(hub: RunningHub) -> None:
    for params in BAD_LISTEN_PARAMS:
        await check_bad_listen(hub, params)


async def check_bad_listen(hub: RunningHub, params: dict[str, Any]) -> None:
    message = {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "method": "subscriptions/listen",
        "params": {"_meta": ENVELOPE, **params},
    }
    async with httpx2.AsyncClient(timeout=10) as client:
        with anyio.fail_after(10):
            response = await post_modern(client, hub, message)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == "listen-1"
    assert body["error"]["code"] == jsonrpc.INVALID_PARAMS


async def test_a_cancellation_naming_no_possible_request_is_accepted_and_harms_nothing(hub: RunningHub) -> None:
    for request_id in ([1], {"a": 1}, True, 1.5):
        await check_cancel(hub, request_id)


async def check_cancel(hub: RunningHub, request_id: Any) -> None:
    params: dict[str, Any] = {"requestId": request_id}
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
    async with httpx2.AsyncClient(timeout=10) as client:
        headers = await open_session(client, hub)
        legacy = await client.post(hub.mcp_url, json=cancel, headers=headers)
        modern = await post_modern(client, hub, {**cancel, "params": {**params, "_meta": ENVELOPE}})
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "alpha-echo", "arguments": {"text": "x"}},
        }
        after = await client.post(hub.mcp_url, json=call, headers=headers)
    assert legacy.status_code == 202
    assert modern.status_code == 202
    assert after.json()["result"]["structuredContent"]["text"] == "x"


async def test_a_call_whose_meta_is_not_an_object_is_invalid_params_not_internal_error(hub: RunningHub) -> None:
    for meta in ("text", 5, [1], True):
        for method in ("tools/call", "prompts/get", "resources/read"):
            await check_bad_meta(hub, meta, method)


async def check_bad_meta(hub: RunningHub, meta: Any, method: str) -> None:
    target = {"uri": "alpha://nothing"} if method == "resources/read" else {"name": "alpha-echo"}
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": method,
        "params": {**target, "arguments": {"text": "x"}, "_meta": meta},
    }
    async with httpx2.AsyncClient(timeout=10) as client:
        headers = await open_session(client, hub)
        legacy = await client.post(hub.mcp_url, json=call, headers=headers)
        modern = await post_modern(client, hub, call)
    assert legacy.json()["id"] == 3
    assert legacy.json()["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert modern.status_code == 400
    assert modern.json()["id"] == 3
    assert modern.json()["error"]["code"] == jsonrpc.INVALID_PARAMS
