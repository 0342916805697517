"""Managed API keys on a replica: an in-memory mirror of the state key store, and the operations on it.

Authentication stays synchronous and O(1): a presented key is hashed and looked up in the mirror.
The mirror is reloaded from the store every `refresh` seconds (5 by default) and at once after this
replica creates, rotates or revokes a key — so a revocation takes effect at once here and within
`refresh` seconds on every other replica sharing the store (docs/console.md). When the store cannot
be read for `stale_after` seconds the mirror fails closed: managed keys are refused until it answers.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from aggregator.principal import SCOPES, KeyLimits, Principal, Scope
from aggregator.state.interfaces import BudgetPeriod, KeyRecord, KeyStore, StateUnavailable
from aggregator.state.keys import hash_secret

_log = logging.getLogger("toolmux.keys")

KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RESERVED_NAMES = frozenset({"master", "internal", "anonymous"})
DEFAULT_REFRESH = 5.0


class KeyRequestError(ValueError):
    """A key operation's input is wrong; `field` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class KeySpec:
    """What a new key may carry (validated; the admin API, the CLI and the console build one)."""

    name: str
    tools: tuple[str, ...] = ("*",)
    models: tuple[str, ...] | None = None
    scopes: tuple[Scope, ...] = ()
    budget: float | None = None
    budget_period: BudgetPeriod = "month"
    rpm: int | None = None
    tpm: int | None = None
    expires_at: float | None = None
    metadata: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, now: float) -> KeySpec:
        """A spec from a JSON object; `expires_in` (seconds) is accepted for `expires_at`."""
        name = data.get("name")
        if not isinstance(name, str) or not KEY_NAME_RE.match(name):
            raise KeyRequestError("name must be 1-64 letters, digits, '_', '.' or '-'", "name")
        if name in RESERVED_NAMES:
            raise KeyRequestError(f"{name!r} is a reserved name", "name")
        tools = _globs(data.get("tools", ["*"]), "tools")
        models = None if data.get("models") is None else _globs(data["models"], "models")
        scopes = _globs(data.get("scopes", []), "scopes")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise KeyRequestError(f"unknown scope {unknown[0]!r}; scopes: {', '.join(SCOPES)}", "scopes")
        period = data.get("budget_period", "month")
        if period not in ("day", "month", "total"):
            raise KeyRequestError("budget_period must be day, month or total", "budget_period")
        expires_at = _number(data.get("expires_at"), "expires_at")
        expires_in = _number(data.get("expires_in"), "expires_in")
        if expires_in is not None:
            expires_at = now + expires_in
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise KeyRequestError("metadata must be a JSON object", "metadata")
        return cls(
            name=name,
            tools=tools,
            models=models,
            scopes=tuple(s for s in SCOPES if s in scopes),
            budget=_number(data.get("budget"), "budget"),
            budget_period=period,
            rpm=_count(data.get("rpm"), "rpm"),
            tpm=_count(data.get("tpm"), "tpm"),
            expires_at=expires_at,
            metadata=metadata,
        )

    async def create_in(self, store: KeyStore) -> tuple[KeyRecord, str]:
        """The key in `store` (a taken name there is its `KeyExists`); the secret is returned once."""
        return await store.create(
            self.name,
            tools=self.tools,
            budget=self.budget,
            budget_period=self.budget_period,
            rpm=self.rpm,
            tpm=self.tpm,
            expires_at=self.expires_at,
            metadata=self.metadata,
            models=self.models,
            scopes=self.scopes,
        )


def _globs(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value):
        raise KeyRequestError(f"{field} must be a list of names or globs", field)
    return tuple(value)


def _number(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise KeyRequestError(f"{field} must be a number", field)
    try:
        number = float(value)
    except ValueError:
        raise KeyRequestError(f"{field} must be a number", field) from None
    if not math.isfinite(number) or number < 0:
        raise KeyRequestError(f"{field} must be a positive number", field)
    return number


def _count(value: Any, field: str) -> int | None:
    number = _number(value, field)
    if number is None:
        return None
    if number != int(number) or number < 1:
        raise KeyRequestError(f"{field} must be a whole number of at least 1", field)
    return int(number)


def principal_of(record: KeyRecord) -> Principal:
    limits = KeyLimits(
        models=record.models,
        rpm=record.rpm,
        tpm=record.tpm,
        budget=record.budget,
        budget_period=record.budget_period,
    )
    scopes = tuple(s for s in SCOPES if s in record.scopes)
    return Principal(name=record.name, allowed_tools=record.tools, scopes=scopes, limits=limits, managed=True)


def describe(record: KeyRecord, now: float) -> dict[str, Any]:
    """A key as the admin API and the console show it (never a secret, nor its hash)."""
    state = "revoked" if record.revoked_at is not None else "expired" if not record.active(now) else "active"
    return {
        "name": record.name,
        "prefix": record.prefix,
        "source": "store",
        "state": state,
        "tools": list(record.tools),
        "models": None if record.models is None else list(record.models),
        "scopes": list(record.scopes),
        "budget": record.budget,
        "budget_period": record.budget_period,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "expires_at": record.expires_at,
        "metadata": record.metadata,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


class ManagedKeys:
    """A replica's mirror of the key store: what `aggregator.auth.KeyStore` consults after the YAML keys."""

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh: float = DEFAULT_REFRESH,
        clock: Callable[[], float] = time.time,
        taken: Callable[[str], bool] = lambda name: False,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh
        self.stale_after = max(refresh * 6, 30.0)
        self.clock = clock
        self.taken = taken  # a YAML key's name: a managed key may not shadow it
        self._by_hash: dict[str, tuple[KeyRecord, Principal]] = {}
        self._by_name: dict[str, tuple[str, Principal]] = {}
        self._loaded_at = 0.0
        self.on_revoke: list[Callable[[str], None]] = []

    # --- authentication (sync, in memory) ------------------------------------------------------
    def _fresh(self) -> bool:
        return self.clock() - self._loaded_at <= self.stale_after

    def principal_for(self, presented: str) -> Principal | None:
        found = self._by_hash.get(hash_secret(presented))
        if found is None or not self._fresh():
            return None
        record, principal = found
        return principal if record.active(self.clock()) else None

    def signing_secret(self, name: str) -> tuple[str, Principal] | None:
        """The secret hash (the hub-side signing secret of presigned URLs) and principal of an active key."""
        found = self._by_name.get(name)
        if found is None or not self._fresh():
            return None
        record = self._by_hash[found[0]][0]
        return found if record.active(self.clock()) else None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    # --- the mirror ------------------------------------------------------------------------------
    async def reload(self) -> None:
        rows = await self.store.active_hashes()
        by_hash = {digest: (record, principal_of(record)) for record, digest in rows}
        self._by_hash = by_hash
        self._by_name = {record.name: (digest, principal) for digest, (record, principal) in by_hash.items()}
        self._loaded_at = self.clock()

    async def run(self) -> None:
        """Reload every `refresh_interval` seconds until cancelled."""
        while True:
            await anyio.sleep(self.refresh_interval)
            try:
                await self.reload()
            except StateUnavailable as exc:
                _log.warning("managed keys: the key store did not answer (%s); keeping the last view", exc)
            except Exception:  # a failed refresh (a locked SQLite file, ...) must not end the loop, nor the hub
                _log.exception("managed keys: refreshing the mirror failed; keeping the last view")

    # --- operations ------------------------------------------------------------------------------
    async def list(self) -> list[KeyRecord]:
        return await self.store.list()

    async def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        if self.taken(spec.name):
            raise KeyRequestError(f"a key named {spec.name!r} exists in the config file", "name")
        record, secret = await spec.create_in(self.store)
        await self.reload()
        return record, secret

    async def rotate(self, name: str) -> tuple[KeyRecord, str]:
        result = await self.store.rotate(name)
        await self.reload()
        return result

    async def revoke(self, name: str) -> bool:
        revoked = await self.store.revoke(name)
        # Drop it from the mirror before anything else runs, then reload the rest.
        self._by_name.pop(name, None)
        self._by_hash = {d: v for d, v in self._by_hash.items() if v[0].name != name}
        for hook in self.on_revoke:
            hook(name)
        await self.reload()
        return revoked
