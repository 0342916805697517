"""Two hub replicas sharing PostgreSQL and Redis: a managed key lives in PostgreSQL, works on both,
shares one rpm window, and a revocation is immediate where it happened and reaches the other
replica within the mirror's refresh interval."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import psycopg
import pytest

from aggregator.state import StateConfig
from tests.aggregator.console.support import MASTER, USER, bearer, console_hub
from tests.aggregator.state.conftest import POSTGRES_URL, shared_state_config  # noqa: F401 (fixture)

pytestmark = pytest.mark.anyio
REFRESH_BOUND = 15.0  # the mirror reloads every 5 s; generous for a loaded machine


async def status_of(http: httpx2.AsyncClient, secret: str) -> int:
    return (await http.get("/v1/models", headers=bearer(secret))).status_code


async def until_status(http: httpx2.AsyncClient, secret: str, wanted: int) -> None:
    """Poll until the replica answers `wanted` (its key mirror reloads on a timer: nothing to wait on)."""
    with anyio.fail_after(REFRESH_BOUND):
        while True:
            if await status_of(http, secret) == wanted:
                return
            await anyio.sleep(0.2)


async def test_a_key_in_the_shared_store_serves_both_replicas_and_its_revocation_reaches_both(
    shared_state_config: StateConfig,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    state = {"state": shared_state_config.model_dump(by_alias=True, exclude_none=True)}
    async with (
        console_hub(tmp_path / "a", **state) as (a, _fake_a),
        console_hub(tmp_path / "b", **state) as (b, _fake_b),
        httpx2.AsyncClient(base_url=a.url) as on_a,
        httpx2.AsyncClient(base_url=b.url) as on_b,
    ):
        made = await on_a.post("/admin/keys", json={"name": "app", "tools": ["models-*"], "rpm": 2}, headers=MASTER)
        secret = made.json()["secret"]
        assert await status_of(on_a, secret) == 200  # at once on the replica that created it
        await until_status(on_b, secret, 200)
        chat = {"model": "main", "messages": USER, "cache": "no-store"}
        first = await on_a.post("/v1/chat/completions", json=chat, headers=bearer(secret))
        second = await on_b.post("/v1/chat/completions", json=chat, headers=bearer(secret))
        third = await on_a.post("/v1/chat/completions", json=chat, headers=bearer(secret))
        assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)

        assert (await on_a.delete("/admin/keys/app", headers=MASTER)).status_code == 200
        assert await status_of(on_a, secret) == 401  # at once where it was revoked
        await until_status(on_b, secret, 401)

    async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
        cursor = await conn.execute(
            f'SELECT secret_hash, revoked_at FROM "{shared_state_config.schema_name}".api_keys WHERE name = %s',
            ("app",),
        )
        stored = await cursor.fetchone()
    assert stored is not None and stored[0] != secret and len(stored[0]) == 64 and stored[1] is not None
