"""Fan-out and the replica registry: list-changed / config-reload events and the fleet view."""

from __future__ import annotations

import anyio
import pytest

from aggregator.state import CHANNEL_LIST_CHANGED, ReplicaInfo
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_an_event_published_by_one_replica_reaches_subscribers_on_every_replica(pair: Pair) -> None:
    async with (
        pair.a.pubsub.subscribe(CHANNEL_LIST_CHANGED) as on_a,
        pair.b.pubsub.subscribe(CHANNEL_LIST_CHANGED) as on_b,
    ):
        await pair.a.pubsub.publish(CHANNEL_LIST_CHANGED, {"kind": "tools", "from": "a"})
        with anyio.fail_after(5):
            assert await anext(on_a) == {"kind": "tools", "from": "a"}
            assert await anext(on_b) == {"kind": "tools", "from": "a"}


async def test_every_live_replica_is_in_the_fleet_until_it_leaves_or_goes_silent(pair: Pair) -> None:
    await pair.a.registry.heartbeat(ReplicaInfo("a", "1.0", load=2), ttl=15)
    await pair.b.registry.heartbeat(ReplicaInfo("b", "1.0", load=0), ttl=15)
    fleet = await pair.a.registry.fleet()
    assert [(r.id, r.load) for r in fleet] == [("a", 2), ("b", 0)]
    await pair.b.registry.leave("b")
    assert [r.id for r in await pair.a.registry.fleet()] == ["a"]
    pair.clock.advance(16)
    assert await pair.b.registry.fleet() == []
