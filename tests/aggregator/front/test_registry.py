"""The front registry decides which client hears of what the hub announces."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aggregator.front.registry import FrontRegistry, Listener
from aggregator.front.session import FrontSession
from aggregator.principal import MASTER
from aggregator.protocol.eras import LATEST_LEGACY, META_SUBSCRIPTION_ID, MODERN_VERSION

pytestmark = pytest.mark.anyio


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def methods(self) -> list[str]:
        return [m["method"] for m in self.messages]


def session(*, modern: bool = False, log_level: str | None = None, uris: set[str] | None = None) -> FrontSession:
    made = FrontSession(principal=MASTER, protocol_version=MODERN_VERSION if modern else LATEST_LEGACY, modern=modern)
    made.initialized = True
    made.log_level = log_level
    made.subscriptions = uris or set()
    made.unsolicited = Inbox()
    return made


def inbox(of: FrontSession) -> Inbox:
    assert isinstance(of.unsolicited, Inbox)
    return of.unsolicited


def listener(emit: Any, *, tools: bool = False, uris: set[str] | None = None) -> Listener:
    return Listener("master", "sub-1", tools, False, False, uris or set(), emit)


async def test_a_resource_update_reaches_only_the_sessions_and_listeners_subscribed_to_it() -> None:
    registry = FrontRegistry()
    watching, other = session(uris={"toolmux://mem/a"}), session(uris={"toolmux://mem/b"})
    stream = Inbox()
    registry.sessions |= {watching, other}
    registry.listeners.add(listener(stream, uris={"toolmux://mem/a"}))

    await registry.resource_updated("toolmux://mem/a", {"uri": "toolmux://mem/a"})

    assert inbox(watching).methods == ["notifications/resources/updated"]
    assert inbox(other).messages == []
    [update] = stream.messages
    assert update["params"] == {"uri": "toolmux://mem/a", "_meta": {META_SUBSCRIPTION_ID: "sub-1"}}


async def test_a_servers_log_line_outside_calls_reaches_legacy_sessions_that_asked_for_logs() -> None:
    registry = FrontRegistry()
    asked, silent = session(log_level="info"), session()
    registry.sessions |= {asked, silent}

    await registry.server_log({"level": "info", "data": "hello"})

    assert inbox(asked).methods == ["notifications/message"]
    assert inbox(silent).messages == []


async def test_a_list_change_reaches_the_listeners_that_opted_in() -> None:
    registry = FrontRegistry()
    tools_stream, other_stream = Inbox(), Inbox()
    registry.listeners |= {listener(tools_stream, tools=True), listener(other_stream)}

    await registry.list_changed("notifications/tools/list_changed", "tools")

    assert tools_stream.methods == ["notifications/tools/list_changed"]
    assert other_stream.messages == []


async def test_a_listener_whose_stream_broke_is_closed() -> None:
    async def broken(message: dict[str, Any]) -> None:
        raise anyio.BrokenResourceError

    registry = FrontRegistry()
    gone = listener(broken, tools=True)
    registry.listeners.add(gone)

    await registry.list_changed("notifications/tools/list_changed", "tools")

    assert gone.closed.is_set()


async def test_closing_the_registry_cancels_every_sessions_in_flight_requests() -> None:
    registry = FrontRegistry()
    open_session = session()
    scope = anyio.CancelScope()
    open_session.in_flight["r-1"] = scope
    registry.sessions.add(open_session)

    registry.close()

    assert open_session.closed and scope.cancel_called
