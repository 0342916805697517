"""2025-era MCP sessions through a round-robin balancer: every request of a session reaches the
replica that owns it, whichever replica the balancer picked (the others forward it)."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest
import yaml
from mcp import Client, types
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from aggregator.protocol import jsonrpc, sse
from aggregator.protocol.eras import META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION
from aggregator.protocol.headers import modern_headers
from aggregator.protocol.sse import SseDecoder
from tests.support.replicas import PROJECT_ROOT, Fleet, replica_fleet

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fleet(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    probe = {
        "command": sys.executable,
        "args": ["-m", "tests.fixtures.probe_server", "--name", "probe", "--marker-dir", "@SHARED@"],
        "cwd": str(PROJECT_ROOT),
        "protocol": "legacy",
    }
    async with replica_fleet(tmp_path_factory.mktemp("fleet"), {"mcpServers": {"probe": probe}}) as running:
        yield running


async def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        for _ in range(int(timeout / 0.02) + 1):  # written by another process: nothing to wait on but the file
            if await anyio.Path(path).exists():
                return
            await anyio.sleep(0.02)


async def test_a_2025_session_runs_calls_with_progress_a_cancellation_and_an_elicitation_through_the_balancer(
    fleet: Fleet,
) -> None:
    served: list[str] = []

    async def note_replica(response: httpx2.Response) -> None:
        served.append(response.headers.get("x-served-by", ""))

    async def on_elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        return types.ElicitResult(action="accept", content={"answer": "blue"})

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    http = httpx2.AsyncClient(
        headers=fleet.headers(),
        timeout=httpx2.Timeout(30, read=None),
        event_hooks={"response": [note_replica]},
    )
    async with (
        http,
        Client(
            streamable_http_client(fleet.mcp_url, http_client=http), mode="legacy", elicitation_callback=on_elicit
        ) as client,
    ):
        for i in range(100):
            result = await client.call_tool(
                "probe-slow", {"steps": 2, "interval": 0, "tag": f"p{i}"}, progress_callback=on_progress
            )
            assert not result.is_error
        started = anyio.Event()

        async def first_progress(value: float, total: float | None, message: str | None) -> None:
            started.set()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: client.call_tool(
                        "probe-slow", {"steps": 1000, "interval": 0.05, "tag": "gone"}, progress_callback=first_progress
                    )
                )
                await started.wait()
                tg.cancel_scope.cancel()
        await wait_for_file(fleet.shared_dir / "cancelled-gone")
        user = await client.call_tool("probe-ask_user", {"question": "favourite colour?"})
        after = await client.call_tool("probe-echo", {"text": "still here"})
    assert progress == [1, 2] * 100
    assert user.content[0].text == "user accept: blue"  # type: ignore[union-attr]
    assert after.structured_content == {"text": "still here", "server": "probe"}
    assert {"r0", "r1"} <= set(served)  # both replicas took the session's requests


async def rpc(http: httpx2.AsyncClient, url: str, fleet: Fleet, body: dict[str, Any], sid: str | None = None) -> Any:
    headers = {**fleet.headers(), "accept": "application/json, text/event-stream", "mcp-protocol-version": LEGACY}
    if sid:
        headers["mcp-session-id"] = sid
    return await http.post(f"{url}/mcp/", content=orjson.dumps(body), headers=headers)


async def test_a_legacy_sse_stream_dropped_on_one_replica_resumes_on_the_other_with_last_event_id(
    fleet: Fleet,
) -> None:
    owner, other = fleet.replicas
    async with fleet.http() as http:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        response = await rpc(http, owner.url, fleet, init)
        sid = response.headers["mcp-session-id"]
        await rpc(http, owner.url, fleet, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "probe-slow", "arguments": {"steps": 6, "interval": 0.1}, "_meta": {"progressToken": 7}},
        }
        headers = {
            **fleet.headers(),
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": LEGACY,
            "mcp-session-id": sid,
        }
        first: list[dict[str, Any]] = []
        last_id = ""
        with anyio.fail_after(20):
            async with http.stream("POST", f"{owner.url}/mcp/", content=orjson.dumps(call), headers=headers) as sse:
                parser = SseDecoder()
                async for chunk in sse.aiter_bytes():
                    for event in parser.feed(chunk):
                        last_id = event.id or last_id
                        if event.data:
                            first.append(orjson.loads(event.data))
                    if len(first) >= 2:
                        break  # the connection drops here, mid-call
        resumed: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            async with http.stream(
                "GET", f"{other.url}/mcp/", headers={**headers, "accept": "text/event-stream", "last-event-id": last_id}
            ) as sse:
                assert sse.status_code == 200
                parser = SseDecoder()
                async for chunk in sse.aiter_bytes():
                    for event in parser.feed(chunk):
                        if event.data:
                            resumed.append(orjson.loads(event.data))
    steps = [m["params"]["progress"] for m in first + resumed if m.get("method") == "notifications/progress"]
    assert steps == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing repeated
    assert resumed[-1]["id"] == 2 and resumed[-1]["result"]["content"][0]["text"] == "done after 6 steps"


async def test_a_config_reload_on_one_replica_reaches_the_other_through_pub_sub(fleet: Fleet) -> None:
    first, second = fleet.replicas
    for replica in fleet.replicas:  # one config for all replicas (a ConfigMap), changed once
        config = yaml.safe_load(replica.config_path.read_text())
        added = dict(config["mcpServers"]["probe"])
        added["args"] = ["-m", "tests.fixtures.probe_server", "--name", "added"]
        config["mcpServers"]["added"] = added
        replica.config_path.write_text(yaml.safe_dump(config))
    assert first.process is not None
    first.process.send_signal(signal.SIGHUP)  # only the first replica is told
    async with fleet.http() as http:
        with anyio.fail_after(30):
            while True:
                health = (await http.get(f"{second.url}/health", headers=fleet.headers())).json()
                if health["servers"].get("added", {}).get("state") == "ready":
                    break
                await anyio.sleep(0.1)  # another process reloads: nothing to wait on but its answers
        on_first = (await http.get(f"{first.url}/health", headers=fleet.headers())).json()
    assert on_first["servers"]["added"]["state"] in ("starting", "ready")
    assert "config reloaded" in second.output()


async def stateless_call(
    http: httpx2.AsyncClient, url: str, fleet: Fleet, params: dict[str, Any], request_id: int
) -> dict[str, Any]:
    """One 2026-07-28 tools/call, its envelope in `_meta`, sent to one replica; the JSON-RPC response."""
    meta = {
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_CAPABILITIES: {"elicitation": {}},
        META_CLIENT_INFO: {"name": "t", "version": "1"},
    }
    body = jsonrpc.request(request_id, "tools/call", {**params, "_meta": meta})
    headers = {
        **fleet.headers(),
        **modern_headers(body, MODERN_VERSION),
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
    }
    response = await http.post(f"{url}/mcp/", content=jsonrpc.dumps(body), headers=headers)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        messages = [orjson.loads(e.data) for e in sse.parse_events(response.content) if e.data]
        return next(m for m in messages if m.get("id") == request_id)
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_stateless_clients_input_round_parked_on_one_replica_is_answered_through_the_other(
    fleet: Fleet,
) -> None:
    first, second = fleet.replicas
    ask = {"name": "probe-ask_user", "arguments": {"question": "favourite colour?"}}
    async with fleet.http() as http:
        with anyio.fail_after(30):
            round_one = await stateless_call(http, first.url, fleet, ask, 1)
            result = round_one["result"]
            assert result["resultType"] == "input_required"
            (key,) = result["inputRequests"]
            answer = {"action": "accept", "content": {"answer": "blue"}}
            retry = {**ask, "inputResponses": {key: answer}, "requestState": result["requestState"]}
            # The upstream call waits on the first replica; the retry reaches the second.
            final = await stateless_call(http, second.url, fleet, retry, 2)
    assert final["result"]["content"][0]["text"] == "user accept: blue"
