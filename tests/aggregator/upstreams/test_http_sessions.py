"""Handshake-era streamable HTTP behind the hub: sessions that expire, HTTP failures, credentials."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from anyio.abc import TaskStatus
from mcp.shared.exceptions import MCPError

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, running_hub
from tests.aggregator.upstreams.fakes import PROTOCOL, SessionServer
from tests.support.asgi import serve_asgi

pytestmark = pytest.mark.anyio

SECRET = "sekrit-token-do-not-log"


@pytest.fixture
async def remote() -> AsyncIterator[tuple[SessionServer, str]]:
    server = SessionServer(require_token=SECRET)
    async with serve_asgi(server.app()) as base:
        yield server, f"{base}/mcp"


def remote_entry(url: str, token: str = SECRET) -> dict[str, object]:
    return {
        "url": url,
        "headers": {"Authorization": f"Bearer {token}"},
        "restart": {"first_delay": 5, "initial_backoff": 5},
    }


async def started(hub: RunningHub) -> None:
    """Any HTTP request waits for the hub's startup (upstreams connected or failed)."""
    async with httpx2.AsyncClient() as http:
        await http.get(f"{hub.url}/health/liveliness")


async def test_calls_after_the_server_forgot_the_session_succeed_after_a_transparent_reinitialize(
    tmp_path: Path, remote: tuple[SessionServer, str]
) -> None:
    server, url = remote
    async with running_hub(tmp_path, {"remote": remote_entry(url)}) as hub, hub.client() as client:
        assert await client.call("remote-echo", text="before") == [{"type": "text", "text": "echo before"}]
        server.forget_sessions()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(partial(client.call, "remote-echo", text=f"after {n}"))
        after = await client.call("remote-echo", text="later")
        state = hub.hub.health(deep=True)["servers"]["remote"]

    assert after == [{"type": "text", "text": "echo later"}]
    # Three calls hit the expiry at once: one re-initialization served them all, replaying the first handshake.
    assert len(server.initializes) == 2
    assert server.initializes[1] == server.initializes[0]
    assert server.methods().count("notifications/initialized") == 2
    assert state["state"] == "ready"
    assert state["restarts"] == 0


async def test_every_request_after_initialize_carries_the_session_and_negotiated_version(
    tmp_path: Path, remote: tuple[SessionServer, str]
) -> None:
    server, url = remote
    async with running_hub(tmp_path, {"remote": remote_entry(url)}) as hub, hub.client() as client:
        await client.call("remote-echo", text="x")

    # The stateless probe (server/discover) and the initialize that follows it carry no session.
    probe_headers, probe = server.received[0]
    initialize_headers, _ = server.received[1]
    assert probe["method"] == "server/discover" and "mcp-session-id" not in probe_headers
    assert "mcp-session-id" not in initialize_headers
    for headers, message in server.received[2:]:
        assert headers["mcp-session-id"] == "session-1", message
        assert headers["mcp-protocol-version"] == PROTOCOL
        assert headers["authorization"] == f"Bearer {SECRET}"
    assert server.deleted == ["session-1"]  # the session is ended when the hub stops


async def test_a_server_error_or_a_garbled_answer_is_a_clear_error_and_the_server_stays_usable(
    tmp_path: Path, remote: tuple[SessionServer, str]
) -> None:
    server, url = remote
    server.tools += [{"name": n, "inputSchema": {"type": "object"}} for n in ("explode", "garble", "garble_sse")]
    async with running_hub(tmp_path, {"remote": remote_entry(url)}) as hub, hub.client() as client:
        errors = {}
        for name in ("explode", "garble", "garble_sse"):
            with anyio.fail_after(10), pytest.raises(MCPError) as caught:
                await client.call_tool(f"remote-{name}", {})
            errors[name] = caught.value.error.message
        still = await client.call("remote-echo", text="fine")

    assert "HTTP 500 Internal Server Error" in errors["explode"]
    assert "not JSON-RPC" in errors["garble"]
    assert "ended before the answer" in errors["garble_sse"]
    assert "not JSON-RPC" in errors["garble_sse"]
    assert all("Traceback" not in message for message in errors.values())
    assert still == [{"type": "text", "text": "echo fine"}]


async def test_wrong_credentials_show_the_server_down_with_the_status_and_no_secret(
    tmp_path: Path, remote: tuple[SessionServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = remote
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-also-secret"
    in_query = "query-secret-too"
    async with running_hub(tmp_path, {"remote": remote_entry(f"{url}?key={in_query}", wrong)}) as hub:
        await started(hub)
        health = hub.hub.health(deep=True)
        async with httpx2.AsyncClient() as http:
            deep = await http.get(f"{hub.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})

    remote_state = health["servers"]["remote"]
    assert remote_state["state"] == "down"
    assert "401 Unauthorized" in remote_state["reason"]
    assert "remote.headers" in remote_state["reason"]
    assert deep.json()["servers"]["remote"]["reason"] == remote_state["reason"]
    assert wrong not in json.dumps(health) + deep.text + caplog.text
    assert in_query not in json.dumps(health) + deep.text  # (httpx2's own INFO request log shows full URLs)


async def test_a_tool_the_server_announces_on_its_get_stream_joins_the_catalog(
    tmp_path: Path, remote: tuple[SessionServer, str]
) -> None:
    server, url = remote
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        running_hub(tmp_path, {"remote": remote_entry(url)}) as hub,
        hub.client(message_handler=on_message) as client,
    ):
        await client.call("remote-echo", text="x")
        with anyio.fail_after(10):
            # The first GET stream only primes an event id and ends; the hub reconnects with it.
            await server.resumed.wait()
            server.announce_tool("late")
            await changed.wait()
        names = {tool.name for tool in await client.list_tools()}

    assert "remote-late" in names
    assert server.get_headers[1]["last-event-id"] == "prime-1"
    assert server.get_headers[1]["mcp-session-id"] == "session-1"
    assert server.get_headers[1]["accept"] == "text/event-stream"


async def test_cancelling_a_remote_call_tells_the_server_and_closes_the_call_stream(
    tmp_path: Path, remote: tuple[SessionServer, str]
) -> None:
    server, url = remote
    server.tools.append({"name": "wait", "inputSchema": {"type": "object"}})
    started = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        started.set()

    async with running_hub(tmp_path, {"remote": remote_entry(url)}) as hub, hub.client() as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(client.call_tool, "remote-wait", {}, progress=on_progress))
                await started.wait()
                tg.cancel_scope.cancel()
            await server.cancelled.wait()
            await server.wait_abandoned.wait()
        still = await client.call("remote-echo", text="after")

    cancel = next(message for _, message in server.received if message.get("method") == "notifications/cancelled")
    call = next(m for _, m in server.received if m.get("params", {}).get("name") == "wait")
    assert cancel["params"]["requestId"] == call["id"]
    assert still == [{"type": "text", "text": "echo after"}]


async def test_a_remote_server_that_goes_away_gives_clear_errors_and_leaves_the_catalog(tmp_path: Path) -> None:
    server = SessionServer(offer_get_stream=False)
    stop, gone = anyio.Event(), anyio.Event()
    changed = anyio.Event()

    async def serve(*, task_status: TaskStatus[str]) -> None:
        async with serve_asgi(server.app()) as base:
            task_status.started(base)
            await stop.wait()
        gone.set()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with anyio.create_task_group() as tg:
        base = await tg.start(serve)
        entry = {"url": f"{base}/mcp", "restart": {"first_delay": 5, "initial_backoff": 5}}
        async with running_hub(tmp_path, {"remote": entry}) as hub, hub.client(message_handler=on_message) as client:
            assert await client.call("remote-echo", text="hello") == [{"type": "text", "text": "echo hello"}]
            stop.set()
            with anyio.fail_after(10):
                await gone.wait()
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("remote-echo", {"text": "anyone?"})
                await changed.wait()
            names = {tool.name for tool in await client.list_tools()}
            reason = hub.hub.health(deep=True)["servers"]["remote"]["reason"]

    assert "cannot connect" in caught.value.error.message
    assert "remote-echo" not in names
    assert "cannot connect" in reason
