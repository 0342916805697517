"""A shared store that is down: start-up says so, budgets and key checks fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.state import StateConfig, StateUnavailable, open_state
from aggregator.state.postgres_store import PostgresStore
from aggregator.state.redis_store import RedisBreakerStore, RedisRateLimiter, connect
from tests.aggregator.state.conftest import DEAD_POSTGRES_URL, DEAD_REDIS_URL, POSTGRES_URL, REDIS_URL

pytestmark = pytest.mark.anyio


async def test_a_hub_cannot_start_on_a_redis_that_does_not_answer(tmp_path: Path) -> None:
    config = StateConfig.model_validate({"redis": DEAD_REDIS_URL})
    with pytest.raises(StateUnavailable) as caught:
        await open_state(config, data_dir=tmp_path)
    assert caught.value.store == "redis"


async def test_a_hub_cannot_start_on_a_postgres_that_does_not_answer(tmp_path: Path) -> None:
    config = StateConfig.model_validate({"postgres": DEAD_POSTGRES_URL, "redis": REDIS_URL})
    with pytest.raises(StateUnavailable) as caught:
        await open_state(config, data_dir=tmp_path)
    assert caught.value.store == "postgres"


async def test_budgets_and_key_checks_fail_closed_when_postgres_is_down() -> None:
    store = PostgresStore(DEAD_POSTGRES_URL, schema="t_down", acquire_timeout=0.5)
    await store.open(wait=False)
    try:
        with pytest.raises(StateUnavailable) as spend:
            await store.try_spend("alice", "month", 0.0, 0.1, 10.0)
        assert spend.value.store == "postgres"
        with pytest.raises(StateUnavailable):
            await store.spent("alice", "month", 0.0)
        with pytest.raises(StateUnavailable):
            await store.verify("tmx-anything")
    finally:
        await store.aclose()


async def test_limits_and_circuits_report_redis_down_instead_of_guessing() -> None:
    client = connect(DEAD_REDIS_URL)
    try:
        with pytest.raises(StateUnavailable) as caught:
            await RedisRateLimiter(client, "t:").acquire("dep", rpm=1, tpm=None)
        assert caught.value.store == "redis"
        with pytest.raises(StateUnavailable):
            await RedisBreakerStore(client, "t:").record_success("dep")
    finally:
        await client.aclose()


async def test_health_shows_each_shared_store(shared_state_config: StateConfig, tmp_path: Path) -> None:
    state = await open_state(shared_state_config, data_dir=tmp_path, replica_id="r1")
    try:
        await state.heartbeat("9.9", load=1)
        health = await state.health()
        assert health["mode"] == "shared"
        assert health["stores"] == {"postgres": {"healthy": True}, "redis": {"healthy": True}}
        assert [r["id"] for r in health["fleet"]] == ["r1"]
    finally:
        await state.aclose()
    assert POSTGRES_URL
