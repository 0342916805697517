"""Embedded durable state in one SQLite file: usage rows, budget spend, managed keys.

Statements run in a worker thread under one lock (a call never blocks the event loop on the
disk); `BEGIN IMMEDIATE` makes budget checks atomic even against another process on the file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from aggregator.state import sql
from aggregator.state.interfaces import (
    BudgetPeriod,
    KeyExists,
    KeyNotFound,
    KeyRecord,
    Row,
    SpendDelta,
    SpendResult,
)
from aggregator.state.keys import (
    INSERT_KEY,
    display_prefix,
    hash_secret,
    new_secret,
)
from aggregator.state.migrations import STEPS
from aggregator.state.sql_common import SqlStoreBase

T = TypeVar("T")


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply missing steps; returns the versions applied now."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at REAL NOT NULL)"
    )
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for step in STEPS:
            if step.version in done:
                continue
            for statement in filter(str.strip, step.sqlite.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (step.version, step.name, time.time()),
            )
            applied.append(step.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


class SqliteStore(SqlStoreBase):
    """`UsageLedger` and `KeyStore` over one SQLite file."""

    mark = "?"

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA case_sensitive_like=ON")  # globs match names exactly, as fnmatch does
        self._lock = threading.Lock()
        self.applied = migrate(self._conn)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._conn)

        return await anyio.to_thread.run_sync(locked)

    async def aclose(self) -> None:
        await self._run(lambda conn: conn.close())

    def versions(self) -> list[int]:
        with self._lock:
            return [row[0] for row in self._conn.execute("SELECT version FROM schema_migrations ORDER BY version")]

    async def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda conn: conn.execute(statement, params).fetchall())

    # --- usage ----------------------------------------------------------------------------------
    async def write(self, rows: Sequence[Row], *, spend: Sequence[SpendDelta] = ()) -> None:
        values = [sql.usage_values(r) for r in rows]

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql.insert_usage("?"), values)
                conn.executemany(sql.ADD_SPEND.replace("%s", "?"), [sql.spend_values(d) for d in spend])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        if rows or spend:
            await self._run(run)

    async def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = conn.execute("SELECT * FROM usage_calls ORDER BY id DESC LIMIT ?", (limit,))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return await self._run(run)

    # --- spend ----------------------------------------------------------------------------------
    def _change_spend(
        self, conn: sqlite3.Connection, key: str, period: str, start: float, amount: float, limit: float | None
    ) -> SpendResult:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO budget_spend (key, period, period_start, spent) VALUES (?, ?, ?, 0)",
                (key, period, start),
            )
            where = "key = ? AND period = ? AND period_start = ?"
            params: tuple[Any, ...] = (amount, key, period, start)
            if limit is not None:
                where += " AND spent + ? <= ?"
                params = (*params, amount, limit)
            row = conn.execute(f"UPDATE budget_spend SET spent = spent + ? WHERE {where} RETURNING spent", params)
            updated = row.fetchone()
            if updated is None:
                current = conn.execute(
                    "SELECT spent FROM budget_spend WHERE key = ? AND period = ? AND period_start = ?",
                    (key, period, start),
                ).fetchone()
                result = SpendResult(False, float(current[0]))
            else:
                result = SpendResult(True, float(updated[0]))
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def try_spend(
        self, key: str, period: BudgetPeriod, period_start: float, amount: float, limit: float
    ) -> SpendResult:
        return await self._run(lambda conn: self._change_spend(conn, key, period, period_start, amount, limit))

    async def add_spend(self, key: str, period: BudgetPeriod, period_start: float, amount: float) -> float:
        result = await self._run(lambda conn: self._change_spend(conn, key, period, period_start, amount, None))
        return result.spent

    # --- keys -----------------------------------------------------------------------------------
    async def _insert_key(self, name: str, values: tuple[Any, ...]) -> KeyRecord:
        def run(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    INSERT_KEY.format(marks=", ".join(["?"] * len(values))),
                    values,
                )
            except sqlite3.IntegrityError:
                raise KeyExists(f"a key named {name!r} exists") from None

        await self._run(run)
        record = await self.get(name)
        assert record is not None
        return record

    async def rotate(self, name: str) -> tuple[KeyRecord, str]:
        secret = new_secret()
        cursor = await self._run(
            lambda conn: conn.execute(
                "UPDATE api_keys SET secret_hash = ?, prefix = ? WHERE name = ? AND revoked_at IS NULL",
                (hash_secret(secret), display_prefix(secret), name),
            )
        )
        if cursor.rowcount == 0:
            raise KeyNotFound(f"no active key named {name!r}")
        record = await self.get(name)
        assert record is not None
        return record, secret

    async def revoke(self, name: str) -> bool:
        now = self.clock()
        cursor = await self._run(
            lambda conn: conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name)
            )
        )
        return bool(cursor.rowcount)
