"""The hub over real HTTP on loopback, fronting real child MCP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.fixture(params=["legacy", "modern"])
async def two_probes(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """Two probe children, spoken to in the 2025-11-25 session era or the stateless 2026-07-28 one."""
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    scoped = {"name": "reader", "key": "reader-key-0123456789", "tools": ["alpha-echo", "alpha-pid"]}
    era = request.param
    servers = {"alpha": probe("alpha", marker_dir, protocol=era), "beta": probe("beta", protocol=era)}
    async with running_hub(tmp_path, servers, auth={"keys": [scoped]}) as hub:
        assert all(u.modern == (era == "modern") for u in hub.hub.upstreams.values())
        hub.marker_dir = marker_dir  # type: ignore[attr-defined]
        yield hub


async def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        for _ in range(int(timeout / 0.02) + 1):
            if await anyio.Path(path).exists():
                return
            await anyio.sleep(0.02)


async def test_tools_of_every_upstream_are_listed_namespaced_and_callable(two_probes: RunningHub) -> None:
    async with two_probes.client() as hub:
        names = {t.name for t in await hub.list_tools()}
        assert {"alpha-echo", "beta-echo", "alpha-slow", "beta-ask_llm"} <= names
        assert await hub.call("beta-echo", text="hi") == {"text": "hi", "server": "beta"}


async def test_progress_reaches_the_caller_with_its_own_token(two_probes: RunningHub) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with two_probes.client() as hub:
        result = await hub.call_tool("alpha-slow", {"steps": 3, "interval": 0.01}, progress=on_progress)
    assert not result.is_error
    assert [p for p, _, _ in seen] == [1, 2, 3]
    assert seen[0][1:] == (3, "step 1")


async def test_cancelling_a_call_cancels_it_in_the_child(two_probes: RunningHub) -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with two_probes.client() as hub:
        with anyio.move_on_after(20) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: hub.call_tool(
                        "alpha-slow", {"steps": 1000, "interval": 0.05, "tag": "c1"}, progress=on_progress
                    )
                )
                await started.wait()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        await wait_for_file(two_probes.marker_dir / "cancelled-c1")  # type: ignore[attr-defined]
        # The session stays usable after a cancellation.
        assert (await hub.call("alpha-echo", text="after"))["text"] == "after"


async def test_logs_sampling_elicitation_and_roots_are_relayed_to_the_calling_client(two_probes: RunningHub) -> None:
    logs: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_sampling(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", model="fake", content=types.TextContent(type="text", text=f"echo of {prompt}")
        )

    async def on_elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        return types.ElicitResult(action="accept", content={"answer": "blue"})

    async def on_roots(ctx: ClientRequestContext) -> Any:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async with two_probes.client(
        logging_callback=on_log,
        sampling_callback=on_sampling,
        elicitation_callback=on_elicit,
        list_roots_callback=on_roots,
    ) as hub:
        llm = await hub.call_tool("alpha-ask_llm", {"prompt": "2+2?"})
        user = await hub.call_tool("beta-ask_user", {"question": "favourite colour?"})
        roots = await hub.call_tool("alpha-roots", {})
        await hub.call_tool("beta-log", {"count": 3})
    assert llm.content[0].text == "llm said: echo of 2+2?"  # type: ignore[union-attr]
    assert user.content[0].text == "user accept: blue"  # type: ignore[union-attr]
    assert roots.content[0].text == "file:///work/project"  # type: ignore[union-attr]
    assert logs == ["log line 0", "log line 1", "log line 2"]


async def test_resources_and_prompts_are_aggregated_with_reversible_uris(two_probes: RunningHub) -> None:
    async with two_probes.client() as hub:
        client = hub.client
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"toolmux://alpha/probe://greeting", "toolmux://beta/probe://greeting"} <= resources
        read = await client.read_resource("toolmux://beta/probe://greeting")
        assert read.contents[0].text == "hello from beta"  # type: ignore[union-attr]
        assert str(read.contents[0].uri) == "toolmux://beta/probe://greeting"
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "toolmux://alpha/probe://item/{id}" in templates
        item = await client.read_resource("toolmux://alpha/probe://item/42")
        assert item.contents[0].text == "item 42"  # type: ignore[union-attr]
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"alpha-hello", "beta-hello"} <= prompts
        prompt = await client.get_prompt("alpha-hello", {"who": "Ada"})
        assert prompt.messages[0].content.text == "Say hello to Ada"  # type: ignore[union-attr]


async def test_unknown_tool_error_lists_the_nearest_names(two_probes: RunningHub) -> None:
    async with two_probes.client() as hub:
        with pytest.raises(MCPError) as caught:
            await hub.call_tool("alpha-ecko", {"text": "x"})
    assert caught.value.error.code == -32602
    assert "alpha-echo" in caught.value.error.message


async def test_invalid_arguments_are_an_error_result_naming_field_and_rule(two_probes: RunningHub) -> None:
    async with two_probes.client() as hub:
        missing = await hub.call_tool("alpha-echo", {})
        wrong = await hub.call_tool("alpha-slow", {"steps": "many"})
    assert missing.is_error and "missing required field 'text'" in missing.content[0].text  # type: ignore[union-attr]
    assert wrong.is_error and "'steps'" in wrong.content[0].text  # type: ignore[union-attr]
    assert "rule: type" in wrong.content[0].text  # type: ignore[union-attr]


async def test_a_scoped_key_sees_only_its_tools_and_cannot_learn_others_exist(two_probes: RunningHub) -> None:
    async with two_probes.client("reader-key-0123456789") as hub:
        assert {t.name for t in await hub.list_tools()} == {"alpha-echo", "alpha-pid"}
        with pytest.raises(MCPError) as hidden:
            await hub.call_tool("beta-echo", {"text": "x"})
        with pytest.raises(MCPError) as missing:
            await hub.call_tool("gamma-echo", {"text": "x"})
    assert hidden.value.error.code == missing.value.error.code == -32602
    assert hidden.value.error.message.startswith("Unknown tool: 'beta-echo'")
    assert "beta" not in hidden.value.error.message.removeprefix("Unknown tool: 'beta-echo'")


async def test_requests_without_a_valid_key_get_401(two_probes: RunningHub) -> None:
    async with httpx2.AsyncClient() as http:
        none = await http.post(two_probes.mcp_url, json=INIT)
        wrong = await http.post(two_probes.mcp_url, json=INIT, headers={"Authorization": "Bearer nope-nope-nope"})
        query = await http.post(f"{two_probes.mcp_url}?api_key={MASTER_KEY}", json=INIT)
    assert none.status_code == wrong.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert query.status_code == 200 and query.headers["mcp-session-id"]


async def test_foreign_origin_and_host_are_refused_and_localhost_accepted(two_probes: RunningHub) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with httpx2.AsyncClient() as http:
        evil = await http.post(two_probes.mcp_url, json=INIT, headers={**auth, "Origin": "http://evil.example"})
        rebound = await http.post(two_probes.mcp_url, json=INIT, headers={**auth, "Host": "evil.example:80"})
        local = await http.post(two_probes.mcp_url, json=INIT, headers={**auth, "Origin": "http://localhost:3000"})
    assert evil.status_code == 403 and rebound.status_code == 403
    assert local.status_code == 200


async def test_oversized_bodies_get_413_and_malformed_json_rpc_gets_spec_codes(two_probes: RunningHub) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
    limit = two_probes.hub.config.http.max_request_bytes
    async with httpx2.AsyncClient() as http:
        big = await http.post(two_probes.mcp_url, content=b"[" + b" " * limit + b"]", headers=auth)
        garbage = await http.post(two_probes.mcp_url, content=b"{not json", headers=auth)
        not_rpc = await http.post(two_probes.mcp_url, json={"jsonrpc": "1.0", "id": 3, "method": 7}, headers=auth)
    assert big.status_code == 413
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
    assert not_rpc.status_code == 400 and not_rpc.json()["error"]["code"] == -32600


async def test_both_mcp_paths_answer_without_redirect_and_every_response_has_a_request_id(
    two_probes: RunningHub,
) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with httpx2.AsyncClient() as http:
        slash = await http.post(f"{two_probes.url}/mcp/", json=INIT, headers=auth)
        bare = await http.post(f"{two_probes.url}/mcp", json=INIT, headers=auth)
        echoed = await http.post(f"{two_probes.url}/mcp", json=INIT, headers={**auth, "X-Request-Id": "abc-123"})
    assert slash.status_code == bare.status_code == 200
    assert slash.headers["x-request-id"] and bare.headers["x-request-id"] != slash.headers["x-request-id"]
    assert echoed.headers["x-request-id"] == "abc-123"


async def test_health_probes_are_open_deep_health_and_metrics_need_a_key(two_probes: RunningHub) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with two_probes.client() as hub:
        await hub.call("alpha-echo", text="counted")
    async with httpx2.AsyncClient() as http:
        live = await http.get(f"{two_probes.url}/health/liveliness")
        ready = await http.get(f"{two_probes.url}/health/readiness")
        closed = await http.get(f"{two_probes.url}/health")
        deep = await http.get(f"{two_probes.url}/health", headers=auth)
        metrics = await http.get(f"{two_probes.url}/metrics", headers=auth)
    assert live.status_code == ready.status_code == 200
    assert closed.status_code == 401
    body = deep.json()
    assert body["status"] == "ok" and body["servers"]["alpha"]["state"] == "ready"
    assert 'toolmux_tool_calls_total{outcome="ok",tool="alpha-echo"} 1.0' in metrics.text
    assert "toolmux_tool_call_seconds_bucket" in metrics.text


async def test_a_stateless_2026_client_lists_and_calls_through_the_hub(two_probes: RunningHub) -> None:
    async with two_probes.client(mode="auto") as hub:
        assert hub.client.protocol_version == "2026-07-28"
        assert "alpha-echo" in {t.name for t in await hub.list_tools()}
        assert (await hub.call("alpha-echo", text="modern"))["text"] == "modern"


async def test_a_stateless_client_gets_sampling_as_an_input_required_round_trip(two_probes: RunningHub) -> None:
    async def on_sampling(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return types.CreateMessageResult(
            role="assistant", model="fake", content=types.TextContent(type="text", text="forty-two")
        )

    async with two_probes.client(mode="auto", sampling_callback=on_sampling) as hub:
        first = await hub.client.session.call_tool("alpha-ask_llm", {"prompt": "q"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        assert [r.method for r in (first.input_requests or {}).values()] == ["sampling/createMessage"]
        # The SDK client drives the rounds itself when allowed to.
        result = await hub.call_tool("alpha-ask_llm", {"prompt": "q"})
    assert result.content[0].text == "llm said: forty-two"  # type: ignore[union-attr]


async def test_a_body_that_trickles_in_too_slowly_gets_408_and_the_hub_moves_on(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {}, http={"body_timeout": 0.5}) as running:
        port = int(running.url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            head = (
                f"POST /mcp/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {MASTER_KEY}\r\n"
                "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            )
            await stream.send(head.encode() + b'{"jsonrpc": "2.0", ')
            with anyio.fail_after(10):
                reply = await stream.receive()
        async with running.client() as hub:
            assert await hub.list_tools() == []
    assert reply.startswith(b"HTTP/1.1 408")


async def test_a_client_that_drops_its_stream_mid_progress_leaves_the_upstream_session_intact(
    two_probes: RunningHub,
) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "p1",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "alpha-slow", "arguments": {"steps": 200, "interval": 0.02}, "_meta": meta},
    }
    headers = {
        "Authorization": f"Bearer {MASTER_KEY}",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "alpha-slow",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx2.AsyncClient() as http:
        with anyio.fail_after(20):
            async with http.stream("POST", two_probes.mcp_url, json=body, headers=headers) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and "notifications/progress" in line:
                        break  # drop the connection while progress is still flowing
    async with two_probes.client() as hub:
        assert (await hub.call("alpha-echo", text="still here"))["text"] == "still here"
    assert two_probes.hub.upstreams["alpha"].restarts == 0
