"""The part of the SQL `UsageLedger` and `KeyStore` that does not depend on the dialect.

`SqliteStore` and `PostgresStore` differ in how a statement reaches the database (a worker
thread or an async pool), in the parameter mark (`?` or `%s`) and in their write statements
(upserts, transactions); the reads and key creation are written once here on top of two hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aggregator.state import sql
from aggregator.state.interfaces import BudgetPeriod, KeyRecord
from aggregator.state.keys import KEY_COLUMNS, glob_to_like, hash_secret, insert_values, new_secret, record_from_row


class SqlStoreBase:
    """Shared reads and `create`; a subclass sets `mark` and supplies `_fetchall` and `_insert_key`."""

    mark: str  # the dialect's parameter placeholder
    clock: Callable[[], float]

    async def _insert_key(self, name: str, values: tuple[Any, ...]) -> KeyRecord:
        """Insert one `INSERT_KEY` row and return it as stored; a taken name is a `KeyExists`."""
        raise NotImplementedError

    async def _fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one read statement written with this dialect's `mark`."""
        raise NotImplementedError

    # --- usage ----------------------------------------------------------------------------------
    async def query(
        self,
        *,
        group_by: Sequence[str] = ("model",),
        since: float | None = None,
        until: float | None = None,
        key: str | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        statement, params = sql.usage_query(
            self.mark, group_by=group_by, since=since, until=until, key=key, model=model
        )
        return sql.usage_rows(group_by, await self._fetchall(statement, params))

    # --- spend ----------------------------------------------------------------------------------
    async def spent(self, key: str, period: BudgetPeriod, period_start: float) -> float:
        m = self.mark
        rows = await self._fetchall(
            f"SELECT spent FROM budget_spend WHERE key = {m} AND period = {m} AND period_start = {m}",
            (key, period, period_start),
        )
        return float(rows[0][0]) if rows else 0.0

    # --- keys -----------------------------------------------------------------------------------
    async def _one(self, where: str, param: str) -> KeyRecord | None:
        rows = await self._fetchall(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE {where}", (param,))
        return record_from_row(rows[0]) if rows else None

    async def active_hashes(self) -> list[tuple[KeyRecord, str]]:
        rows = await self._fetchall(f"SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE revoked_at IS NULL")
        return [(record_from_row(r[:-1]), r[-1]) for r in rows]

    async def list(self, pattern: str = "*") -> list[KeyRecord]:
        rows = await self._fetchall(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE name LIKE {self.mark} ESCAPE '\\' ORDER BY name",
            (glob_to_like(pattern),),
        )
        return [record_from_row(r) for r in rows]

    async def create(
        self,
        name: str,
        *,
        tools: Sequence[str] = ("*",),
        budget: float | None = None,
        budget_period: BudgetPeriod = "month",
        rpm: int | None = None,
        tpm: int | None = None,
        expires_at: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        models: Sequence[str] | None = None,
        scopes: Sequence[str] = (),
    ) -> tuple[KeyRecord, str]:
        secret = new_secret()
        values = insert_values(
            name,
            secret,
            self.clock(),
            tools=tools,
            budget=budget,
            budget_period=budget_period,
            rpm=rpm,
            tpm=tpm,
            expires_at=expires_at,
            metadata=metadata,
            models=models,
            scopes=scopes,
        )
        return await self._insert_key(name, values), secret

    async def verify(self, secret: str) -> KeyRecord | None:
        record = await self._one(f"secret_hash = {self.mark}", hash_secret(secret))
        return record if record is not None and record.active(self.clock()) else None

    async def get(self, name: str) -> KeyRecord | None:
        return await self._one(f"name = {self.mark}", name)
