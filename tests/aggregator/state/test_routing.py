"""Least-busy and latency routing data: in-flight counts and smoothed latencies of every replica."""

from __future__ import annotations

import pytest

from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_requests_in_flight_on_both_replicas_add_up(pair: Pair) -> None:
    await pair.a.routing.begin("dep1")
    await pair.b.routing.begin("dep1")
    await pair.b.routing.begin("dep2")
    snapshot = await pair.a.routing.snapshot(["dep1", "dep2", "dep3"])
    assert [snapshot[k].in_flight for k in ("dep1", "dep2", "dep3")] == [2, 1, 0]
    await pair.a.routing.end("dep1")
    assert (await pair.b.routing.snapshot(["dep1"]))["dep1"].in_flight == 1


async def test_latency_is_an_exponentially_weighted_average_shared_by_replicas(pair: Pair) -> None:
    await pair.a.routing.observe("dep", "latency", 1.0, 0.5)
    await pair.b.routing.observe("dep", "latency", 3.0, 0.5)
    await pair.b.routing.observe("dep", "ttft", 0.2, 0.5)
    stats = (await pair.a.routing.snapshot(["dep"]))["dep"]
    assert stats.latency == pytest.approx(2.0) and stats.ttft == pytest.approx(0.2)
    assert (await pair.a.routing.snapshot(["new"]))["new"].latency is None
