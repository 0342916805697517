"""The part of a SQL `KeyStore` that does not depend on the dialect.

`SqliteStore` and `PostgresStore` differ only in how a statement reaches the database (a
worker thread or an async pool) and in the parameter mark (`?` or `%s`); key creation,
lookup by secret and lookup by name are written once here on top of two small hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aggregator.state.interfaces import BudgetPeriod, KeyRecord
from aggregator.state.keys import hash_secret, insert_values, new_secret


class SqlKeys:
    """Shared `create`, `verify` and `get`; a subclass sets `mark` and supplies `_insert_key` and `_one`."""

    mark: str  # the dialect's parameter placeholder
    clock: Callable[[], float]

    async def _insert_key(self, name: str, values: tuple[Any, ...]) -> KeyRecord:
        """Insert one `INSERT_KEY` row and return it as stored; a taken name is a `KeyExists`."""
        raise NotImplementedError

    async def _one(self, where: str, param: str) -> KeyRecord | None:
        """The key matching `where` (one condition with one placeholder), or None."""
        raise NotImplementedError

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
