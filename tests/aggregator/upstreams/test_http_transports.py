"""Which transport a remote server gets, and the stateless revision's headers and cancellation."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from aggregator.config import ServerEntry
from aggregator.upstreams.channel import ChannelClosed
from aggregator.upstreams.http import open_http
from tests.aggregator.hubkit import running_hub
from tests.aggregator.upstreams.fakes import LegacySseServer, SessionServer, StatelessServer
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def modern_call(request_id: int, name: str, **meta: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": {}, "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, **meta}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@pytest.mark.parametrize("transport", ["auto", "sse"])
async def test_a_legacy_sse_only_server_is_listed_and_called_through_the_hub(tmp_path: Path, transport: str) -> None:
    server = LegacySseServer()
    async with serve_asgi(server.app()) as base:
        entry = {"url": f"{base}/sse", "transport": transport}
        async with running_hub(tmp_path, {"old": entry}) as hub, hub.client() as client:
            names = {tool.name for tool in await client.list_tools()}
            with anyio.fail_after(10):
                answer = await client.call("old-echo", text="hi")
            health = hub.hub.health(deep=True)["servers"]["old"]

    assert "old-echo" in names
    assert answer == [{"type": "text", "text": "sse echo hi"}]
    assert health["transport"] == f"sse: {base}/sse"
    # A dual-era client probes first; the legacy server's refusal sends the hub to the handshake.
    methods = [post["method"] for post in server.posts[:4]]
    assert methods == ["server/discover", "initialize", "notifications/initialized", "tools/list"]


async def test_an_endpoint_on_another_origin_is_refused(tmp_path: Path) -> None:
    server = LegacySseServer(endpoint_data="http://attacker.example/messages")
    async with serve_asgi(server.app()) as base:
        entry = ServerEntry(url=f"{base}/sse", transport="sse")
        with anyio.fail_after(10), pytest.raises(ChannelClosed) as caught:
            async with open_http("old", entry):
                pass

    assert "another origin" in caught.value.reason
    assert server.posts == []


async def test_when_neither_transport_answers_the_reason_names_both(tmp_path: Path) -> None:
    server = LegacySseServer()
    async with serve_asgi(server.app()) as base:
        wrong = {"url": f"{base}/nothing-here", "restart": {"first_delay": 5, "initial_backoff": 5}}
        async with running_hub(tmp_path, {"gone": wrong}) as hub, hub.client():
            state = hub.hub.health(deep=True)["servers"]["gone"]

    assert state["state"] == "down"
    assert "HTTP 404" in state["reason"]
    assert "legacy SSE transport failed too" in state["reason"]


async def test_stateless_requests_carry_method_name_and_version_headers_and_no_session() -> None:
    server = StatelessServer()
    async with serve_asgi(server.app()) as base, open_http("modern", ServerEntry(url=f"{base}/mcp")) as channel:
        with anyio.fail_after(10):
            await channel.send(
                modern_call(1, "plain_name"), headers={"Mcp-Param-Region": "eu", "Mcp-Param-City": "Zürich"}
            )
            first = await channel.receive()
            await channel.send(modern_call(2, "wetter-zürich"))
            second = await channel.receive()

    assert (first["id"], second["id"]) == (1, 2)
    plain, encoded = (headers for headers, _ in server.seen)
    assert plain["mcp-protocol-version"] == MODERN
    assert plain["mcp-method"] == "tools/call"
    assert plain["mcp-name"] == "plain_name"
    assert plain["mcp-param-region"] == "eu"
    assert plain["mcp-param-city"] == "=?base64?" + base64.b64encode("Zürich".encode()).decode() + "?="
    assert "mcp-session-id" not in plain
    assert encoded["mcp-name"] == "=?base64?" + base64.b64encode("wetter-zürich".encode()).decode() + "?="


async def test_cancelling_a_stateless_request_closes_its_stream_instead_of_posting() -> None:
    server = StatelessServer()
    async with serve_asgi(server.app()) as base, open_http("modern", ServerEntry(url=f"{base}/mcp")) as channel:
        with anyio.fail_after(10):
            await channel.send(modern_call(7, "slow", progressToken="p7"))
            progress = await channel.receive()
            await server.slow_started.wait()
            await channel.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})
            await server.slow_abandoned.wait()
            await channel.send(modern_call(8, "quick"))
            after = await channel.receive()

    assert progress["method"] == "notifications/progress"
    assert after["id"] == 8
    assert [message.get("method") for _, message in server.seen] == ["tools/call", "tools/call"]


async def test_a_same_origin_redirect_is_followed_and_one_elsewhere_is_a_clear_error() -> None:
    server = SessionServer()

    async def moved(request: Request) -> Response:
        return RedirectResponse("/mcp", status_code=307)

    async def elsewhere(request: Request) -> Response:
        return RedirectResponse("http://elsewhere.invalid/mcp?token=x", status_code=307)

    app = Starlette(
        routes=[
            Route("/moved", moved, methods=["POST"]),
            Route("/elsewhere", elsewhere, methods=["POST"]),
            Route("/mcp", server.endpoint, methods=["GET", "POST", "DELETE"]),
        ]
    )
    answers = {}
    async with serve_asgi(app) as base:
        for path in ("/moved", "/elsewhere"):
            async with open_http("remote", ServerEntry(url=f"{base}{path}", transport="streamable-http")) as channel:
                with anyio.fail_after(10):
                    await channel.send(INITIALIZE)
                    answers[path] = await channel.receive()

    assert answers["/moved"]["result"]["serverInfo"]["name"] == "session-server"
    message = answers["/elsewhere"]["error"]["message"]
    assert "HTTP 307" in message
    assert "http://elsewhere.invalid/mcp" in message
    assert "token" not in message
    assert len(server.initializes) == 1
