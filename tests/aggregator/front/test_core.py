"""The MCP core in memory, in both protocol eras: a real Hub with one upstream (`MemoryServer`), and
front sessions built the way the faces build them, without a transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from aggregator.config import parse
from aggregator.front.core import McpCore
from aggregator.front.envelope import modern_session
from aggregator.front.session import FrontSession
from aggregator.hub import Hub
from aggregator.principal import MASTER, Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import (
    LATEST_LEGACY,
    META_CLIENT_CAPABILITIES,
    META_PROTOCOL_VERSION,
    META_SERVER_INFO,
    MODERN_VERSION,
)
from aggregator.upstreams.upstream import UpstreamKind
from servers.kit.errors import error_from_result
from tests.aggregator.memory_upstream import MemoryServer, legacy_entry

pytestmark = pytest.mark.anyio

MASTER_KEY = "test-master-key-0123456789"
LIMITED = Principal(name="limited", allowed_tools=("mem-echo",))
ERAS = ["legacy", "modern"]


@dataclass
class Front:
    hub: Hub
    core: McpCore
    server: MemoryServer
    emitted: list[dict[str, Any]]
    something_emitted: anyio.Event

    def session(self, era: str, principal: Principal = MASTER, capabilities: dict[str, Any] | None = None) -> Any:
        if era == "legacy":
            session = FrontSession(principal=principal, protocol_version=LATEST_LEGACY)
            session.client_capabilities = capabilities or {}
            session.initialized = True
            return session
        return modern_session(principal, {"_meta": envelope(capabilities)})

    async def emit(self, message: dict[str, Any]) -> None:
        self.emitted.append(message)
        self.something_emitted.set()

    async def ask(self, session: FrontSession, method: str, params: dict[str, Any], rid: Any = 1) -> dict[str, Any]:
        if session.modern:
            params = {**params, "_meta": {**envelope(session.client_capabilities), **params.get("_meta", {})}}
        response = await self.core.handle(session, jsonrpc.request(rid, method, params), self.emit)
        assert response is not None
        return response


def envelope(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    return {META_PROTOCOL_VERSION: MODERN_VERSION, META_CLIENT_CAPABILITIES: capabilities or {}}


@asynccontextmanager
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    config = parse(
        {"builtins": [], "server": {"data_dir": str(tmp_path)}, "auth": {"master_key": MASTER_KEY}}, "<test>"
    )
    hub = Hub(config, master_key=MASTER_KEY)
    core = McpCore(hub)
    server = MemoryServer()
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        upstream = hub.add_upstream("mem", legacy_entry(), server.opener(), UpstreamKind.STDIO)
        await hub.wait_settled(5)
        assert upstream.is_ready
        yield Front(hub, core, server, [], anyio.Event())
        await hub.stop()


async def test_initialize_agrees_on_the_clients_version_or_offers_the_latest(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        known = await f.ask(f.session("legacy"), "initialize", {"protocolVersion": "2025-06-18"})
        unknown = await f.ask(f.session("legacy"), "initialize", {"protocolVersion": "1999-01-01"})
    assert known["result"]["protocolVersion"] == "2025-06-18"
    assert unknown["result"]["protocolVersion"] == LATEST_LEGACY
    assert known["result"]["serverInfo"]["name"] == "toolmux"
    assert known["result"]["capabilities"]["tools"] == {"listChanged": True}


async def test_a_stateless_client_cannot_initialize(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        response = await f.ask(f.session("modern"), "initialize", {"protocolVersion": LATEST_LEGACY})
    assert response["error"]["code"] == jsonrpc.METHOD_NOT_FOUND


@pytest.mark.parametrize("era", ERAS)
async def test_tools_list_names_each_tool_by_its_server_in_both_eras(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        result = (await f.ask(f.session(era), "tools/list", {}))["result"]
        info = f.hub.server_info()
    assert [t["name"] for t in result["tools"]][:2] == ["mem-echo", "mem-add"]
    if era == "modern":
        assert (result["resultType"], result["cacheScope"], result["ttlMs"] > 0) == ("complete", "private", True)
        assert result["_meta"][META_SERVER_INFO] == info
    else:
        assert "resultType" not in result and "_meta" not in result


@pytest.mark.parametrize("era", ERAS)
async def test_tools_list_shows_only_the_tools_a_key_may_call(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        result = (await f.ask(f.session(era, LIMITED), "tools/list", {}))["result"]
    assert [t["name"] for t in result["tools"]] == ["mem-echo"]


@pytest.mark.parametrize("era", ERAS)
async def test_tools_call_answers_with_the_hubs_identity_never_the_upstreams(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        result = (await f.ask(f.session(era), "tools/call", {"name": "mem-echo", "arguments": {"text": "hi"}}))[
            "result"
        ]
        info = f.hub.server_info()
    assert result["structuredContent"]["arguments"] == {"text": "hi"}
    if era == "modern":
        assert result["_meta"] == {META_SERVER_INFO: info}
    else:
        assert "_meta" not in result


@pytest.mark.parametrize("era", ERAS)
async def test_a_tool_out_of_scope_answers_exactly_like_an_unknown_one(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        hidden = await f.ask(f.session(era, LIMITED), "tools/call", {"name": "mem-add", "arguments": {}})
        unknown = await f.ask(f.session(era, LIMITED), "tools/call", {"name": "mem-zzz", "arguments": {}})
    assert hidden["error"]["code"] == unknown["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert hidden["error"]["data"]["tool"] == "mem-add"
    assert hidden["error"]["data"]["nearest"] == unknown["error"]["data"]["nearest"]
    assert f.server.calls() == []


@pytest.mark.parametrize("era", ERAS)
async def test_invalid_arguments_answer_an_error_result_naming_the_field(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        response = await f.ask(f.session(era), "tools/call", {"name": "mem-add", "arguments": {"a": 1}})
    error = error_from_result(response["result"])
    assert error is not None and (error.code, error.field) == ("invalid_argument", "b")
    assert f.server.calls() == []


async def test_a_call_without_a_tool_name_is_invalid_params(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        response = await f.ask(f.session("legacy"), "tools/call", {"arguments": {}})
    assert response["error"]["code"] == jsonrpc.INVALID_PARAMS


@pytest.mark.parametrize("era", ERAS)
async def test_progress_reaches_the_client_before_the_result(tmp_path: Path, era: str) -> None:
    async with front(tmp_path) as f:
        params = {"name": "mem-count", "arguments": {"to": 3}, "_meta": {"progressToken": "p-1"}}
        response = await f.ask(f.session(era), "tools/call", params)
    progress = [m["params"] for m in f.emitted if m.get("method") == "notifications/progress"]
    assert [(p["progressToken"], p["progress"]) for p in progress] == [("p-1", 1), ("p-1", 2), ("p-1", 3)]
    assert response["result"]["content"][0]["text"] == "counted"


async def test_a_clients_cancellation_reaches_the_upstream(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        session = f.session("legacy")
        answered: list[dict[str, Any]] = []

        async def call() -> None:
            answered.append(await f.ask(session, "tools/call", {"name": "mem-hang", "arguments": {}}, rid=42))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(5):
                await f.server.call_started.wait()
            await f.core.handle(session, jsonrpc.notification("notifications/cancelled", {"requestId": 42}), f.emit)
        with anyio.fail_after(5):
            await f.server.cancelled_event.wait()
    assert answered[0]["error"]["code"] == jsonrpc.REQUEST_CANCELLED
    assert f.server.cancelled == [f.server.calls()[0]["id"]]


async def test_an_upstreams_request_during_a_session_call_is_put_to_the_client(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        session = f.session("legacy", capabilities={"roots": {}})
        answers: list[dict[str, Any]] = []

        async def call() -> None:
            answers.append(await f.ask(session, "tools/call", {"name": "mem-ask", "arguments": {}}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(5):
                await f.something_emitted.wait()
            [request] = f.emitted
            assert request["method"] == "roots/list"
            session.deliver_response(jsonrpc.result(request["id"], {"roots": [{"uri": "file:///w"}]}))
    assert answers[0]["result"]["structuredContent"]["result"] == {"roots": [{"uri": "file:///w"}]}


async def test_a_stateless_client_is_asked_for_input_with_input_required_then_retries(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        session = f.session("modern", capabilities={"roots": {}})
        first = (await f.ask(session, "tools/call", {"name": "mem-ask", "arguments": {}}))["result"]
        assert first["resultType"] == "input_required"
        [(key, asked)] = first["inputRequests"].items()
        retry = {
            "name": "mem-ask",
            "arguments": {},
            "inputResponses": {key: {"roots": [{"uri": "file:///w"}]}},
            "requestState": first["requestState"],
        }
        final = (await f.ask(f.session("modern", capabilities={"roots": {}}), "tools/call", retry))["result"]
    assert asked == {"method": "roots/list"}
    assert final["resultType"] == "complete"
    assert final["structuredContent"]["result"] == {"roots": [{"uri": "file:///w"}]}


async def test_a_stateless_client_without_the_capability_gets_missing_client_capability(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        response = await f.ask(f.session("modern"), "tools/call", {"name": "mem-ask", "arguments": {}})
    assert response["error"]["code"] == jsonrpc.MISSING_CLIENT_CAPABILITY


async def test_list_changes_reach_initialized_sessions_the_front_holds(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        heard: dict[str, list[str]] = {"ready": [], "new": []}
        for name, initialized in (("ready", True), ("new", False)):
            session = f.session("legacy")
            session.initialized = initialized

            async def sink(message: dict[str, Any], name: str = name) -> None:
                heard[name].append(message["method"])

            session.unsolicited = sink
            f.core.front.sessions.add(session)
        await f.hub.broadcast("notifications/tools/list_changed", "tools")
    assert heard == {"ready": ["notifications/tools/list_changed"], "new": []}


async def test_an_unknown_method_is_method_not_found(tmp_path: Path) -> None:
    async with front(tmp_path) as f:
        response = await f.ask(f.session("legacy"), "tools/frobnicate", {})
    assert response["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
