"""Shared durable state in PostgreSQL: usage rows, budget spend, managed keys.

One connection pool per replica; every table lives in the configured schema. Budgets are
enforced by a conditional `UPDATE … WHERE spent + amount <= limit RETURNING spent`, atomic across
replicas without explicit locks. A pool that cannot hand out a connection within
`acquire_timeout` raises `StateUnavailable("postgres", ...)`: callers fail closed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aggregator.state import sql
from aggregator.state.interfaces import (
    BudgetPeriod,
    KeyExists,
    KeyNotFound,
    KeyRecord,
    Row,
    SpendDelta,
    SpendResult,
    StateUnavailable,
)
from aggregator.state.keys import (
    INSERT_KEY,
    KEY_COLUMNS,
    display_prefix,
    hash_secret,
    new_secret,
    record_from_row,
)
from aggregator.state.migrations import STEPS
from aggregator.state.sql_common import SqlStoreBase


class PostgresStore(SqlStoreBase):
    """`UsageLedger` and `KeyStore` over a psycopg connection pool."""

    mark = "%s"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "toolmux",
        pool_size: int = 10,
        acquire_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.schema = schema
        self.clock = clock
        self.acquire_timeout = acquire_timeout
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "options": f"-c search_path={schema}", "connect_timeout": 2},
            open=False,
            name=f"toolmux-{schema}",
        )

    async def open(self, *, wait: bool = True) -> None:
        """Start the pool; with `wait`, first prove the server answers (its own error, not a pool timeout)."""
        if wait:
            try:
                probe = await psycopg.AsyncConnection.connect(self.url, connect_timeout=2)
            except psycopg.OperationalError as exc:
                raise StateUnavailable("postgres", str(exc).strip().splitlines()[0]) from None
            await probe.close()
        await self.pool.open(wait=False)

    async def aclose(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
        try:
            async with self.pool.connection(timeout=self.acquire_timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StateUnavailable("postgres", f"no connection within {self.acquire_timeout:g}s ({exc})") from None
        except psycopg.OperationalError as exc:
            raise StateUnavailable("postgres", str(exc).strip() or type(exc).__name__) from None

    # --- migrations -----------------------------------------------------------------------------
    async def migrate(self) -> list[int]:
        """Apply missing steps under an advisory lock (replicas starting together apply each once)."""
        applied: list[int] = []
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"toolmux-migrate:{self.schema}",))
            await conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema)))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for step in STEPS:
                if step.version in done:
                    continue
                for statement in filter(str.strip, step.postgres.split(";")):
                    await conn.execute(statement.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (step.version, step.name)
                )
                applied.append(step.version)
        return applied

    async def versions(self) -> list[int]:
        async with self.connection() as conn:
            cursor = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [row[0] for row in await cursor.fetchall()]

    async def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.connection() as conn:
            cursor = await conn.execute(statement.encode(), params)
            return await cursor.fetchall()

    # --- usage ----------------------------------------------------------------------------------
    async def write(self, rows: Sequence[Row], *, spend: Sequence[SpendDelta] = ()) -> None:
        if not rows and not spend:
            return
        async with self.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            if rows:
                await cursor.executemany(sql.insert_usage("%s").encode(), [sql.usage_values(r) for r in rows])
            if spend:
                await cursor.executemany(sql.ADD_SPEND.encode(), [sql.spend_values(d) for d in spend])

    async def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        async with self.connection() as conn:
            cursor = await conn.execute("SELECT * FROM usage_calls ORDER BY id DESC LIMIT %s", (limit,))
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    # --- spend ----------------------------------------------------------------------------------
    async def try_spend(
        self, key: str, period: BudgetPeriod, period_start: float, amount: float, limit: float
    ) -> SpendResult:
        async with self.connection() as conn:
            # One statement: seed the period's row or add to it, in both cases only within the limit.
            cursor = await conn.execute(
                "INSERT INTO budget_spend (key, period, period_start, spent) SELECT %s, %s, %s, %s WHERE %s <= %s"
                " ON CONFLICT (key, period, period_start) DO UPDATE SET spent = budget_spend.spent + EXCLUDED.spent"
                " WHERE budget_spend.spent + EXCLUDED.spent <= %s RETURNING spent",
                (key, period, period_start, amount, amount, limit, limit),
            )
            row = await cursor.fetchone()
            if row is not None:
                return SpendResult(True, float(row[0]))
        return SpendResult(False, await self.spent(key, period, period_start))

    async def add_spend(self, key: str, period: BudgetPeriod, period_start: float, amount: float) -> float:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO budget_spend (key, period, period_start, spent) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (key, period, period_start) DO UPDATE SET spent = budget_spend.spent + EXCLUDED.spent"
                " RETURNING spent",
                (key, period, period_start, amount),
            )
            row = await cursor.fetchone()
            assert row is not None
            return float(row[0])

    # --- keys -----------------------------------------------------------------------------------
    async def _insert_key(self, name: str, values: tuple[Any, ...]) -> KeyRecord:
        async with self.connection() as conn:
            try:
                cursor = await conn.execute(
                    INSERT_KEY.format(marks=", ".join(["%s"] * len(values))) + f" RETURNING {KEY_COLUMNS}",
                    values,
                )
            except psycopg.errors.UniqueViolation:
                raise KeyExists(f"a key named {name!r} exists") from None
            row = await cursor.fetchone()
        assert row is not None
        return record_from_row(row)

    async def rotate(self, name: str) -> tuple[KeyRecord, str]:
        secret = new_secret()
        async with self.connection() as conn:
            cursor = await conn.execute(
                f"UPDATE api_keys SET secret_hash = %s, prefix = %s WHERE name = %s AND revoked_at IS NULL"
                f" RETURNING {KEY_COLUMNS}",
                (hash_secret(secret), display_prefix(secret), name),
            )
            row = await cursor.fetchone()
        if row is None:
            raise KeyNotFound(f"no active key named {name!r}")
        return record_from_row(row), secret

    async def revoke(self, name: str) -> bool:
        async with self.connection() as conn:
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL", (self.clock(), name)
            )
            return bool(cursor.rowcount)
