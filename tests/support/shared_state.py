"""Real Redis and PostgreSQL for tests: a key prefix and a schema unique to each test, dropped afterwards."""

from __future__ import annotations

import os
import uuid

from aggregator.state import StateConfig

REDIS_URL = os.environ.get("TOOLMUX_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TOOLMUX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def shared_config() -> StateConfig:
    tag = uuid.uuid4().hex[:12]
    return StateConfig.model_validate(
        {"redis": REDIS_URL, "postgres": POSTGRES_URL, "prefix": f"test:{tag}:", "schema": f"t_{tag}"}
    )


async def drop_shared(config: StateConfig) -> None:
    """Remove everything a test left in Redis and PostgreSQL."""
    import psycopg
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{config.prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{config.schema_name}" CASCADE')
