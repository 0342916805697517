"""Schema migrations: numbered, recorded in `schema_migrations`, applied once however often they run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from aggregator.state import StateConfig, open_state, upgrade
from aggregator.state.migrations import LATEST, STEPS
from aggregator.state.postgres_store import PostgresStore
from aggregator.state.sqlite_store import SqliteStore

pytestmark = pytest.mark.anyio


def test_steps_are_numbered_one_to_latest_without_gaps() -> None:
    assert [s.version for s in STEPS] == list(range(1, LATEST + 1))


async def test_sqlite_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    first = await anyio.to_thread.run_sync(SqliteStore, tmp_path / "state.sqlite3")
    assert first.applied == list(range(1, LATEST + 1))
    await first.aclose()
    again = await anyio.to_thread.run_sync(SqliteStore, tmp_path / "state.sqlite3")
    assert again.applied == [] and again.versions() == list(range(1, LATEST + 1))
    await again.aclose()
    assert (await upgrade(StateConfig(), data_dir=tmp_path))[1:] == ([], list(range(1, LATEST + 1)))


async def test_sqlite_upgrade_brings_an_older_schema_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL)")
    conn.executescript(STEPS[0].sqlite)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'x', 0)")
    conn.commit()
    conn.close()
    _, applied, versions = await upgrade(StateConfig(), data_dir=tmp_path)
    assert applied == list(range(2, LATEST + 1)) and versions == list(range(1, LATEST + 1))


async def test_postgres_migrations_from_replicas_starting_together_apply_each_step_once(
    shared_state_config: StateConfig, tmp_path: Path
) -> None:
    config = shared_state_config
    stores = [PostgresStore(config.postgres or "", schema=config.schema_name, pool_size=1) for _ in range(3)]
    results: list[list[int]] = []
    try:
        for store in stores:
            await store.open()

        async def migrate(store: PostgresStore) -> None:
            results.append(await store.migrate())

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(migrate, store)
        assert sorted(results) == [[], [], list(range(1, LATEST + 1))]
        assert await stores[0].versions() == list(range(1, LATEST + 1))
    finally:
        for store in stores:
            await store.aclose()
    store_name, applied, versions = await upgrade(config, data_dir=tmp_path)
    assert config.schema_name in store_name and applied == [] and versions == list(range(1, LATEST + 1))
    state = await open_state(config, data_dir=tmp_path)
    await state.aclose()
