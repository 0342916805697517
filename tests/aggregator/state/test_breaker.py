"""Circuit breakers: a circuit opened by failures seen on one replica is open on every replica."""

from __future__ import annotations

import anyio
import pytest

from aggregator.state import BreakerSettings
from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio

SETTINGS = BreakerSettings(failure_threshold=3, window=10, cooldown=30)


async def test_a_circuit_opened_through_one_replica_is_open_through_the_other(pair: Pair) -> None:
    await pair.a.breakers.record_failure("dep", "boom 1", SETTINGS)
    await pair.b.breakers.record_failure("dep", "boom 2", SETTINGS)
    assert (await pair.a.breakers.status("dep", SETTINGS)).state == "closed"
    opened = await pair.a.breakers.record_failure("dep", "boom 3", SETTINGS)
    assert opened.state == "open"
    seen = await pair.b.breakers.allow("dep", SETTINGS)
    assert seen.state == "open" and seen.last_error == "boom 3" and 0 < seen.retry_in <= 30


async def test_failures_spread_beyond_the_window_do_not_open_the_circuit(pair: Pair) -> None:
    await pair.a.breakers.record_failure("dep", "x", SETTINGS)
    await pair.b.breakers.record_failure("dep", "x", SETTINGS)
    pair.clock.advance(11)
    await pair.a.breakers.record_failure("dep", "x", SETTINGS)
    assert (await pair.b.breakers.status("dep", SETTINGS)).state == "closed"


async def test_after_the_cooldown_exactly_one_replica_gets_the_half_open_probe(pair: Pair) -> None:
    for _ in range(3):
        await pair.a.breakers.record_failure("dep", "down", SETTINGS)
    pair.clock.advance(30)
    assert (await pair.b.breakers.status("dep", SETTINGS)).state == "half-open"
    verdicts = []

    async def claim(first: bool) -> None:
        verdicts.append((await (pair.a if first else pair.b).breakers.allow("dep", SETTINGS)).state)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(claim, i % 2 == 0)
    assert sorted(verdicts) == ["closed", "open", "open", "open", "open", "open"]


async def test_a_failed_probe_reopens_and_a_successful_one_closes_for_everyone(pair: Pair) -> None:
    for _ in range(3):
        await pair.a.breakers.record_failure("dep", "down", SETTINGS)
    pair.clock.advance(30)
    assert (await pair.b.breakers.allow("dep", SETTINGS)).state == "closed"
    assert (await pair.b.breakers.record_failure("dep", "still down", SETTINGS)).state == "open"
    assert (await pair.a.breakers.allow("dep", SETTINGS)).state == "open"
    pair.clock.advance(30)
    assert (await pair.a.breakers.allow("dep", SETTINGS)).state == "closed"
    await pair.a.breakers.record_success("dep")
    assert (await pair.b.breakers.allow("dep", SETTINGS)).state == "closed"
    assert (await pair.b.breakers.allow("dep", SETTINGS)).state == "closed"


async def test_a_released_probe_lets_the_next_caller_probe(pair: Pair) -> None:
    for _ in range(3):
        await pair.a.breakers.record_failure("dep", "down", SETTINGS)
    pair.clock.advance(30)
    assert (await pair.a.breakers.allow("dep", SETTINGS)).state == "closed"
    assert (await pair.b.breakers.allow("dep", SETTINGS)).state == "open"
    await pair.a.breakers.release_probe("dep")
    assert (await pair.b.breakers.allow("dep", SETTINGS)).state == "closed"
