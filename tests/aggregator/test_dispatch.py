"""Dispatch in memory: resolve once, scope, validate once, forward, count — against a real Upstream
whose server is `MemoryServer`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from aggregator import dispatch
from aggregator.catalog import Catalog
from aggregator.metrics import Metrics
from aggregator.principal import MASTER, Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.upstream import Upstream, UpstreamKind
from servers.kit.context import CALLER_META_KEY, REQUEST_ID_META_KEY
from servers.kit.domain import STRUCTURED_ONLY_META_KEY
from servers.kit.errors import error_from_result
from tests.aggregator.memory_upstream import SERVER_INFO_KEY, MemoryServer, legacy_entry

pytestmark = pytest.mark.anyio

LIMITED = Principal(name="limited", allowed_tools=("mem-echo",))


@dataclass
class Services:
    catalog: Catalog = field(default_factory=Catalog)
    metrics: Metrics = field(default_factory=Metrics)

    def calls(self, tool: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value("toolmux_tool_calls_total", {"tool": tool, "outcome": outcome})
        return value or 0.0


@asynccontextmanager
async def memory_hub(
    kind: UpstreamKind = UpstreamKind.STDIO, **entry_options: Any
) -> AsyncIterator[tuple[Services, MemoryServer, Upstream]]:
    services = Services()
    server = MemoryServer()

    async def changed(upstream: Upstream) -> None:
        services.catalog.rebuild([upstream])

    async def ignore(upstream: Upstream, method: str, params: dict[str, Any] | None) -> None:
        return None

    upstream = Upstream(
        "mem", legacy_entry(**entry_options), server.opener(), on_change=changed, on_notification=ignore, kind=kind
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream.run)
        assert await upstream.wait_ready(5)
        with anyio.fail_after(5):
            await upstream.settled.wait()
        yield services, server, upstream
        upstream.stop()


class Route:
    """A session-era front call: dispatch relays what the upstream asks during the call to it."""

    stateless = False

    def upstream_envelope(self) -> dict[str, Any]:
        return {}

    async def relay_request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        return {}

    async def relay_notification(self, method: str, params: dict[str, Any] | None) -> None:
        return None


async def test_a_call_reaches_the_upstream_under_its_original_name_with_the_hubs_meta() -> None:
    async with memory_hub() as (services, server, _):
        result = await dispatch.call_tool(services, MASTER, "mem-echo", {"text": "hi"}, request_id="r-1")
    assert result["structuredContent"]["arguments"] == {"text": "hi"}
    [call] = server.calls()
    assert call["params"]["name"] == "echo"
    meta = call["params"]["_meta"]
    assert meta[REQUEST_ID_META_KEY] == "r-1"
    assert meta[CALLER_META_KEY] == "master"
    assert services.calls("mem-echo", "ok") == 1


async def test_a_tool_out_of_scope_is_refused_exactly_like_an_unknown_one() -> None:
    async with memory_hub() as (services, server, _):
        with pytest.raises(RpcError) as hidden:
            await dispatch.call_tool(services, LIMITED, "mem-add", {"a": 1, "b": 2})
        with pytest.raises(RpcError) as unknown:
            await dispatch.call_tool(services, LIMITED, "mem-nothing", {})
    assert hidden.value.code == unknown.value.code == jsonrpc.INVALID_PARAMS
    assert hidden.value.data == {"tool": "mem-add", "nearest": ["mem-echo"]}
    assert unknown.value.data == {"tool": "mem-nothing", "nearest": ["mem-echo"]}
    assert server.calls() == []


async def test_resolving_a_tool_out_of_scope_gives_nothing() -> None:
    async with memory_hub() as (services, _, _):
        assert dispatch.resolve_tool(services, LIMITED, "mem-add") is None
        resolved = dispatch.resolve_tool(services, LIMITED, "mem-echo")
    assert resolved is not None
    assert (resolved.name, resolved.upstream.name, resolved.entry.original) == ("mem-echo", "mem", "echo")


async def test_invalid_arguments_are_refused_in_the_hub_naming_the_field() -> None:
    async with memory_hub() as (services, server, _):
        result = await dispatch.call_tool(services, MASTER, "mem-add", {"a": 1, "b": "two"})
    error = error_from_result(result)
    assert error is not None
    assert (error.code, error.field) == ("invalid_argument", "b")
    assert server.calls() == []
    assert services.calls("mem-add", "invalid") == 1


async def test_arguments_that_are_not_an_object_are_invalid_params() -> None:
    async with memory_hub() as (services, server, _):
        with pytest.raises(RpcError) as caught:
            await dispatch.call_tool(services, MASTER, "mem-echo", ["not", "an", "object"])
    assert caught.value.code == jsonrpc.INVALID_PARAMS
    assert server.calls() == []


async def test_an_in_process_builtin_is_not_validated_twice() -> None:
    async with memory_hub(UpstreamKind.BUILTIN_INPROCESS) as (services, server, _):
        resolved = dispatch.resolve_tool(services, MASTER, "mem-add")
        await dispatch.call_tool(services, MASTER, "mem-add", {"a": 1}, tool=resolved)
    assert resolved is not None and resolved.contract is None
    # The built-in judges its arguments itself: the call reached it.
    assert [c["params"]["arguments"] for c in server.calls()] == [{"a": 1}]


async def test_a_call_resolved_by_the_face_is_not_looked_up_again() -> None:
    async with memory_hub() as (services, server, _):
        resolved = dispatch.resolve_tool(services, MASTER, "mem-echo")
        services.catalog.rebuild([])  # the catalog moves on; the resolved call keeps its target
        result = await dispatch.call_tool(services, MASTER, "mem-echo", {}, tool=resolved)
    assert result["isError"] is False
    assert len(server.calls()) == 1


async def test_a_caller_without_a_front_route_asks_for_structured_content_only() -> None:
    async with memory_hub() as (services, server, _):
        await dispatch.call_tool(services, MASTER, "mem-echo", {})
        await dispatch.call_tool(services, MASTER, "mem-echo", {}, route=Route())
    internal, front = (c["params"]["_meta"] for c in server.calls())
    assert internal.get(STRUCTURED_ONLY_META_KEY) is True
    assert STRUCTURED_ONLY_META_KEY not in front


async def test_a_client_cannot_set_the_hubs_own_meta_keys() -> None:
    forged = {CALLER_META_KEY: "master", STRUCTURED_ONLY_META_KEY: True, "trace": "t-1"}
    async with memory_hub() as (services, server, _):
        await dispatch.call_tool(services, LIMITED, "mem-echo", {}, route=Route(), client_meta=forged)
    meta = server.calls()[0]["params"]["_meta"]
    assert meta[CALLER_META_KEY] == "limited"
    assert STRUCTURED_ONLY_META_KEY not in meta
    assert meta["trace"] == "t-1"


async def test_the_upstreams_result_comes_back_untouched_for_the_face_to_stamp() -> None:
    async with memory_hub() as (services, _, _):
        result = await dispatch.call_tool(services, MASTER, "mem-echo", {})
    assert SERVER_INFO_KEY in result["_meta"]


async def test_progress_reaches_the_caller_before_the_result() -> None:
    seen: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with memory_hub() as (services, _, _):
        await dispatch.call_tool(services, MASTER, "mem-count", {"to": 3}, on_progress=on_progress)
        seen.append("result")
    assert seen == [1, 2, 3, "result"]


async def test_cancelling_a_call_reaches_the_upstream_and_is_counted() -> None:
    async with memory_hub() as (services, server, _):
        async with anyio.create_task_group() as tg:
            tg.start_soon(dispatch.call_tool, services, MASTER, "mem-hang", {})
            with anyio.fail_after(5):
                await server.call_started.wait()
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            await server.cancelled_event.wait()
    assert server.cancelled == [server.calls()[0]["id"]]
    assert services.calls("mem-hang", "cancelled") == 1


async def test_a_call_past_its_timeout_fails_with_upstream_timeout() -> None:
    async with memory_hub(timeouts={"call": 0.05}) as (services, server, _):
        with pytest.raises(RpcError) as caught:
            await dispatch.call_tool(services, MASTER, "mem-hang", {})
        with anyio.fail_after(5):
            await server.cancelled_event.wait()
    assert caught.value.code == jsonrpc.UPSTREAM_TIMEOUT
    assert services.calls("mem-hang", "timeout") == 1


async def test_a_dead_upstream_fails_the_call_as_unavailable_with_the_reason() -> None:
    async with memory_hub(restart={"policy": "never"}) as (services, _, _):
        resolved = dispatch.resolve_tool(services, MASTER, "mem-die")
        with pytest.raises(RpcError) as caught:
            await dispatch.call_tool(services, MASTER, "mem-die", {}, tool=resolved)
    assert caught.value.code == jsonrpc.UPSTREAM_UNAVAILABLE
    assert "the memory server crashed" in caught.value.message
    assert services.calls("mem-die", "unavailable") == 1


async def test_an_upstream_error_response_is_raised_with_its_code() -> None:
    async with memory_hub() as (services, _, _):
        with pytest.raises(RpcError) as caught:
            await dispatch.call_tool(services, MASTER, "mem-fail", {})
    assert caught.value.code == jsonrpc.INTERNAL_ERROR
    assert services.calls("mem-fail", "error") == 1


@pytest.mark.parametrize(("modern", "code"), [(False, jsonrpc.RESOURCE_NOT_FOUND), (True, jsonrpc.INVALID_PARAMS)])
async def test_an_unknown_resource_is_not_found_in_the_callers_era(modern: bool, code: int) -> None:
    async with memory_hub() as (services, _, _):
        found = await dispatch.read_resource(services, MASTER, "toolmux://mem/mem://a", modern=modern)
        with pytest.raises(RpcError) as caught:
            await dispatch.read_resource(services, MASTER, "toolmux://mem/mem://missing", modern=modern)
    assert found["contents"] == [{"uri": "toolmux://mem/mem://a", "text": "A"}]
    assert caught.value.code == code
    assert caught.value.data == {"uri": "toolmux://mem/mem://missing"}


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        (jsonrpc.INVALID_PARAMS, "not_found", False),
        (jsonrpc.UPSTREAM_UNAVAILABLE, "unavailable", True),
        (jsonrpc.UPSTREAM_TIMEOUT, "timeout", True),
        (jsonrpc.INTERNAL_ERROR, "upstream_error", False),
    ],
)
def test_a_protocol_failure_maps_to_one_tool_error_code(code: int, expected: str, retryable: bool) -> None:
    error = dispatch.tool_error(RpcError(code, "why"))
    assert (error.code, error.retryable, error.message) == (expected, retryable, "why")
