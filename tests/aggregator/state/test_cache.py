"""The response cache: an answer stored through one replica is a hit through the other, until its TTL."""

from __future__ import annotations

import anyio
import pytest

from tests.aggregator.state.conftest import Pair

pytestmark = pytest.mark.anyio


async def test_an_answer_cached_through_one_replica_is_a_hit_through_the_other(pair: Pair) -> None:
    assert await pair.b.cache.get("k1") is None
    await pair.a.cache.set("k1", b'{"answer": 42}', ttl=60)
    assert await pair.b.cache.get("k1") == b'{"answer": 42}'
    assert await pair.a.cache.get("other") is None


async def test_a_cached_answer_expires_after_its_ttl(pair: Pair) -> None:
    await pair.a.cache.set("short", b"x", ttl=0.05)
    # The TTL runs on the store's own clock (Redis expires keys itself): wait for it, bounded.
    with anyio.fail_after(5):
        while await pair.b.cache.get("short") is not None:  # noqa: ASYNC110 (no event: the store expires it)
            await anyio.sleep(0.02)
