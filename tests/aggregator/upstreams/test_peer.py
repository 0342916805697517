"""The JSON-RPC peer of one upstream session, in memory: correlation, progress, cancellation, failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.channel import ChannelClosed, MessageHandler, PushChannel
from aggregator.upstreams.peer import RpcPeer
from tests.aggregator.memory_upstream import MemoryChannel

pytestmark = pytest.mark.anyio


async def _ignore(method: str, params: dict[str, Any] | None) -> None:
    return None


@asynccontextmanager
async def running_peer(
    channel: MemoryChannel | None = None, **options: Any
) -> AsyncIterator[tuple[RpcPeer, MemoryChannel]]:
    channel = channel or MemoryChannel()
    options.setdefault("on_notification", _ignore)
    peer = RpcPeer(channel, "mem", **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(peer.run)
        yield peer, channel
        tg.cancel_scope.cancel()


async def _next_request(channel: MemoryChannel, method: str = "tools/call") -> dict[str, Any]:
    with anyio.fail_after(5):
        async for message in channel.to_server:
            if message.get("method") == method:
                return message
    raise AssertionError("the channel closed")


class Route:
    """A front call as the peer sees it: where server-initiated messages for the call go."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, Any]] = []
        self.asked: list[str] = []

    async def relay_request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        self.asked.append(method)
        return {"roots": [{"uri": "file:///work"}]}

    async def relay_notification(self, method: str, params: dict[str, Any] | None) -> None:
        self.notifications.append((method, params))


async def test_answers_reach_the_caller_that_asked_even_out_of_order() -> None:
    async with running_peer() as (peer, channel):
        results: dict[str, Any] = {}

        async def call(tag: str) -> None:
            results[tag] = await peer.request("tools/call", {"name": tag}, timeout=5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "first")
            first = await _next_request(channel)
            tg.start_soon(call, "second")
            second = await _next_request(channel)
            await channel.push(jsonrpc.result(second["id"], {"tag": "second"}))
            await channel.push(jsonrpc.result(first["id"], {"tag": "first"}))
    assert results == {"first": {"tag": "first"}, "second": {"tag": "second"}}


async def test_an_error_response_raises_with_the_servers_code() -> None:
    async with running_peer() as (peer, channel), anyio.create_task_group() as tg:

        async def answer() -> None:
            request = await _next_request(channel)
            await channel.push(jsonrpc.error(request["id"], jsonrpc.INVALID_PARAMS, "bad"))

        tg.start_soon(answer)
        with pytest.raises(RpcError) as caught:
            await peer.request("tools/call", {}, timeout=5)
    assert caught.value.code == jsonrpc.INVALID_PARAMS


async def test_progress_reaches_the_caller_before_the_result() -> None:
    seen: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await anyio.lowlevel.checkpoint()  # a slow consumer: the result must still wait for every step
        seen.append(progress)

    async with running_peer() as (peer, channel), anyio.create_task_group() as tg:

        async def serve() -> None:
            request = await _next_request(channel)
            token = request["params"]["_meta"]["progressToken"]
            for step in (1, 2, 3):
                await channel.push(
                    jsonrpc.notification("notifications/progress", {"progressToken": token, "progress": step})
                )
            await channel.push(jsonrpc.result(request["id"], {"done": True}))

        tg.start_soon(serve)
        result = await peer.request("tools/call", {}, timeout=5, on_progress=on_progress)
        seen.append("result")
    assert result == {"done": True}
    assert seen == [1, 2, 3, "result"]


async def test_cancelling_the_caller_sends_notifications_cancelled_with_the_request_id() -> None:
    async with running_peer() as (peer, channel):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: peer.request("tools/call", {}, timeout=5))
            request = await _next_request(channel)
            tg.cancel_scope.cancel()
        cancelled = await _next_request(channel, "notifications/cancelled")
    assert cancelled["params"]["requestId"] == request["id"]


async def test_a_call_that_outlives_its_timeout_fails_with_upstream_timeout_and_is_cancelled_upstream() -> None:
    async with running_peer() as (peer, channel):
        with pytest.raises(RpcError) as caught:
            await peer.request("tools/call", {}, timeout=0.05)
        request = await _next_request(channel)
        cancelled = await _next_request(channel, "notifications/cancelled")
    assert caught.value.code == jsonrpc.UPSTREAM_TIMEOUT
    assert cancelled["params"]["requestId"] == request["id"]


async def test_a_dead_upstream_fails_in_flight_calls_with_the_reason() -> None:
    async with running_peer() as (peer, channel):
        async with anyio.create_task_group() as tg:

            async def die() -> None:
                await _next_request(channel)
                channel.close("the child exited with status 3")

            tg.start_soon(die)
            with pytest.raises(ChannelClosed) as caught:
                await peer.request("tools/call", {}, timeout=5)
        with pytest.raises(ChannelClosed) as later:
            await peer.request("tools/call", {}, timeout=5)
    assert caught.value.reason == "the child exited with status 3"
    assert later.value.reason == "the child exited with status 3"


async def test_a_server_request_during_a_call_goes_to_that_calls_route_and_is_answered() -> None:
    route = Route()
    async with running_peer() as (peer, channel), anyio.create_task_group() as tg:
        tg.start_soon(lambda: peer.request("tools/call", {}, timeout=5, route=route))
        call = await _next_request(channel)
        await channel.push(jsonrpc.request("srv-1", "roots/list"))
        with anyio.fail_after(5):
            answer = await channel.to_server.receive()
        await channel.push(jsonrpc.notification("notifications/message", {"level": "info", "data": "hi"}))
        await channel.push(jsonrpc.result(call["id"], {}))
    assert answer == jsonrpc.result("srv-1", {"roots": [{"uri": "file:///work"}]})
    assert route.asked == ["roots/list"]
    assert route.notifications == [("notifications/message", {"level": "info", "data": "hi"})]


async def test_a_server_request_outside_any_call_is_refused_with_method_not_found() -> None:
    async with running_peer() as (_peer, channel):
        await channel.push(jsonrpc.request("srv-1", "sampling/createMessage", {}))
        with anyio.fail_after(5):
            answer = await channel.to_server.receive()
    assert answer["id"] == "srv-1"
    assert answer["error"]["code"] == jsonrpc.METHOD_NOT_FOUND


async def test_a_ping_from_the_server_is_answered_by_the_peer_itself() -> None:
    async with running_peer() as (_peer, channel):
        await channel.push(jsonrpc.request(7, "ping"))
        with anyio.fail_after(5):
            answer = await channel.to_server.receive()
    assert answer == jsonrpc.result(7, {})


async def test_notifications_outside_calls_go_to_the_session_handler() -> None:
    heard: list[str] = []
    done = anyio.Event()

    async def on_notification(method: str, params: dict[str, Any] | None) -> None:
        heard.append(method)
        done.set()

    async with running_peer(on_notification=on_notification) as (_peer, channel):
        await channel.push(jsonrpc.notification("notifications/tools/list_changed"))
        with anyio.fail_after(5):
            await done.wait()
    assert heard == ["notifications/tools/list_changed"]


class PushingChannel(MemoryChannel, PushChannel):
    """An in-process channel: it hands messages to the peer's dispatcher instead of queueing them."""

    def __init__(self) -> None:
        super().__init__()
        self.handler: MessageHandler | None = None

    def attach(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self.handler = handler


async def test_a_push_channel_is_attached_and_its_messages_answer_calls_without_the_queue() -> None:
    channel = PushingChannel()
    async with running_peer(channel) as (peer, _), anyio.create_task_group() as tg:

        async def answer() -> None:
            request = await _next_request(channel)
            assert channel.handler is not None
            channel.handler(jsonrpc.result(request["id"], {"pushed": True}))

        tg.start_soon(answer)
        result = await peer.request("tools/call", {}, timeout=5)
    assert result == {"pushed": True}
