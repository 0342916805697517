"""Two models services ("replicas") on one shared state: limits, budgets, circuits and cache hold across both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.state import State, StateConfig, open_state
from servers.kit import ToolError
from servers.models.config import ModelsConfig
from servers.models.service import ModelsService
from tests.aggregator.state.conftest import DEAD_POSTGRES_URL, DEAD_REDIS_URL, REDIS_URL
from tests.servers.models.fakes import FakeBackend, fake_backend

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Say hello"}]


async def _no_sleep(seconds: float) -> None:
    return None


def config_for(fake: FakeBackend, deployment: dict[str, Any], **settings: Any) -> ModelsConfig:
    return ModelsConfig.model_validate(
        {
            "backends": {"a": {"type": "openai", "base_url": fake.url, "read_timeout": 2.0}},
            "aliases": {"main": {"deployments": [{"backend": "a", "model": "fake-model", **deployment}]}},
            "retries": {"max_retries": 0},
            **settings,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBackend]:
    async with fake_backend("openai") as backend:
        yield backend


@pytest.fixture
async def states(shared_state_config: StateConfig, tmp_path: Path) -> AsyncIterator[tuple[State, State]]:
    a = await open_state(shared_state_config, data_dir=tmp_path / "a", replica_id="a")
    b = await open_state(shared_state_config, data_dir=tmp_path / "b", replica_id="b")
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def _replicas(config: ModelsConfig, states: tuple[State, State], tmp_path: Path) -> list[ModelsService]:
    return [
        ModelsService(config, data_dir=tmp_path / name, sleep=_no_sleep, state=state)
        for name, state in zip("ab", states, strict=True)
    ]


async def test_two_models_services_sharing_state_enforce_one_rpm_limit(
    fake: FakeBackend, states: tuple[State, State], tmp_path: Path
) -> None:
    replicas = await _replicas(config_for(fake, {"rpm": 10}), states, tmp_path)
    try:
        for i in range(10):
            await replicas[i % 2].chat({"model": "main", "messages": USER}, caller="alice")
        for replica in replicas:
            with pytest.raises(ToolError) as caught:
                await replica.chat({"model": "main", "messages": USER}, caller="alice")
            assert caught.value.code == "rate_limited"
    finally:
        for replica in replicas:
            await replica.aclose()
    assert len(fake.chat_requests) == 10


async def test_a_budget_spent_through_one_replica_is_spent_on_the_other(
    fake: FakeBackend, states: tuple[State, State], tmp_path: Path
) -> None:
    config = config_for(
        fake,
        {"prices": {"input": 1000.0, "output": 1000.0}},  # 0.015 USD a call
        budgets={"alice": {"max_cost": 0.02, "period": "month"}},
    )
    a, b = await _replicas(config, states, tmp_path)
    try:
        await a.chat({"model": "main", "messages": USER}, caller="alice")
        await b.chat({"model": "main", "messages": USER}, caller="alice")
        with pytest.raises(ToolError) as caught:
            await a.chat({"model": "main", "messages": USER}, caller="alice")
        await a.usage.flush()  # rows are written in batches; a flush makes them visible to every replica
        report = await b.usage_report({"group_by": ["key"]})
    finally:
        await a.aclose()
        await b.aclose()
    assert caught.value.code == "payment_required"
    assert report["totals"]["requests"] == 2 and report["budgets"][0]["spent"] == pytest.approx(0.03)


async def test_a_circuit_opened_by_failures_on_one_replica_is_open_on_the_other(
    fake: FakeBackend, states: tuple[State, State], tmp_path: Path
) -> None:
    config = config_for(fake, {}, circuit_breaker={"failure_threshold": 2, "cooldown": 30})
    a, b = await _replicas(config, states, tmp_path)
    fake.fail(500).fail(500)
    try:
        for _ in range(2):
            with pytest.raises(ToolError):
                await a.chat({"model": "main", "messages": USER})
        with pytest.raises(ToolError) as caught:
            await b.chat({"model": "main", "messages": USER})
    finally:
        await a.aclose()
        await b.aclose()
    assert caught.value.code == "unavailable" and caught.value.retry_after is not None
    assert len(fake.chat_requests) == 2


async def test_an_answer_cached_by_one_replica_is_a_hit_on_the_other(
    fake: FakeBackend, states: tuple[State, State], tmp_path: Path
) -> None:
    config = config_for(fake, {})
    config.aliases["main"].cache.enabled = True
    a, b = await _replicas(config, states, tmp_path)
    try:
        first = await a.chat({"model": "main", "messages": USER})
        second = await b.chat({"model": "main", "messages": USER})
    finally:
        await a.aclose()
        await b.aclose()
    assert first["toolmux"]["cache_hit"] is False and second["toolmux"]["cache_hit"] is True
    assert second["choices"] == first["choices"] and len(fake.chat_requests) == 1


async def test_budgets_fail_closed_when_postgres_is_down(
    fake: FakeBackend, shared_state_config: StateConfig, tmp_path: Path
) -> None:
    from aggregator.state.postgres_store import PostgresStore

    config = config_for(fake, {}, budgets={"alice": {"max_cost": 1.0}})
    redis_only = StateConfig.model_validate({"redis": REDIS_URL, "prefix": shared_state_config.prefix})
    state = await open_state(redis_only, data_dir=tmp_path)
    dead = PostgresStore(DEAD_POSTGRES_URL, schema="t_down", acquire_timeout=0.5)
    await dead.open(wait=False)
    state.config = redis_only.model_copy(update={"postgres": DEAD_POSTGRES_URL})
    state.ledger = dead
    service = ModelsService(config, data_dir=tmp_path, sleep=_no_sleep, state=state)
    try:
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": USER}, caller="alice")
        await service.chat({"model": "main", "messages": USER}, caller="bob")  # no budget: served
    finally:
        await service.aclose()
        await dead.aclose()
        await state.aclose()
    assert caught.value.code == "unavailable" and caught.value.retryable
    assert len(fake.chat_requests) == 1


async def test_with_redis_down_calls_go_on_with_this_replicas_own_limits_and_no_cache(
    fake: FakeBackend, tmp_path: Path
) -> None:
    from aggregator.state import redis_store as rs

    config = config_for(fake, {"rpm": 2})
    config.aliases["main"].cache.enabled = True
    state = await open_state(StateConfig(), data_dir=tmp_path)
    dead = rs.connect(DEAD_REDIS_URL)
    state.config = StateConfig.model_validate({"redis": DEAD_REDIS_URL})
    state.gate, state.limiter = rs.RedisGate(dead, "t:"), rs.RedisRateLimiter(dead, "t:")
    state.breakers, state.cache = rs.RedisBreakerStore(dead, "t:"), rs.RedisResponseCache(dead, "t:")
    service = ModelsService(config, data_dir=tmp_path, sleep=_no_sleep, state=state)
    try:
        first = await service.chat({"model": "main", "messages": USER})
        second = await service.chat({"model": "main", "messages": USER})
        with pytest.raises(ToolError) as caught:
            await service.chat({"model": "main", "messages": [{"role": "user", "content": "other"}]})
    finally:
        await service.aclose()
        await dead.aclose()
        await state.aclose()
    assert first["toolmux"]["cache_hit"] is False and second["toolmux"]["cache_hit"] is False
    assert caught.value.code == "rate_limited"  # the cap still holds, per replica
    assert len(fake.chat_requests) == 2
