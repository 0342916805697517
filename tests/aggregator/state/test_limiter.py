"""Rate limits: sliding 60-second windows of requests and tokens, one budget for every replica."""

from __future__ import annotations

import anyio
import pytest

from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_the_eleventh_request_of_an_rpm_10_window_is_refused_whichever_replica_takes_it(pair: Pair) -> None:
    for i in range(10):
        replica = pair.a if i % 2 else pair.b
        assert await replica.limiter.acquire("alias:main", rpm=10, tpm=None) is None
    refusal = await pair.a.limiter.acquire("alias:main", rpm=10, tpm=None)
    assert refusal is not None and refusal.limit == "rpm" and refusal.cap == 10
    assert 0 < refusal.retry_after <= 60
    assert await pair.b.limiter.acquire("alias:main", rpm=10, tpm=None) is not None


async def test_concurrent_requests_from_two_replicas_admit_exactly_the_cap(pair: Pair) -> None:
    admitted = 0

    async def one(replica_is_a: bool) -> None:
        nonlocal admitted
        replica = pair.a if replica_is_a else pair.b
        if await replica.limiter.acquire("dep", rpm=7, tpm=None) is None:
            admitted += 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i % 2 == 0)
    assert admitted == 7


async def test_the_window_slides_requests_older_than_a_minute_stop_counting(pair: Pair) -> None:
    for _ in range(3):
        assert await pair.a.limiter.acquire("dep", rpm=3, tpm=None) is None
    assert await pair.b.limiter.acquire("dep", rpm=3, tpm=None) is not None
    pair.clock.advance(60.5)
    assert await pair.b.limiter.acquire("dep", rpm=3, tpm=None) is None


async def test_tokens_spent_through_one_replica_fill_the_tpm_cap_of_the_other(pair: Pair) -> None:
    assert await pair.a.limiter.acquire("dep", rpm=None, tpm=1000) is None
    await pair.a.limiter.add_tokens("dep", 600)
    assert await pair.b.limiter.acquire("dep", rpm=None, tpm=1000) is None
    await pair.b.limiter.add_tokens("dep", 400)
    refusal = await pair.a.limiter.acquire("dep", rpm=None, tpm=1000)
    assert refusal is not None and refusal.limit == "tpm" and refusal.cap == 1000
    pair.clock.advance(61)
    assert await pair.a.limiter.acquire("dep", rpm=None, tpm=1000) is None


async def test_limits_of_different_keys_are_independent(pair: Pair) -> None:
    assert await pair.a.limiter.acquire("one", rpm=1, tpm=None) is None
    assert await pair.b.limiter.acquire("two", rpm=1, tpm=None) is None
    await pair.b.limiter.add_request("one")
    assert await pair.a.limiter.acquire("one", rpm=2, tpm=None) is not None
