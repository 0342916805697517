"""`open_state`: the one place that picks each store's implementation from the `state:` config.

Redis and PostgreSQL clients are imported only when configured, so the embedded default never
needs (or loads) them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from aggregator.state.config import StateConfig
from aggregator.state.interfaces import (
    BreakerStore,
    GateStore,
    KeyStore,
    PubSub,
    RateLimiter,
    ReplicaInfo,
    ReplicaRegistry,
    ResponseCacheStore,
    RoutingStore,
    SessionDirectory,
    StateUnavailable,
    UsageLedger,
)
from aggregator.state.memory import (
    MemoryBreakerStore,
    MemoryGate,
    MemoryPubSub,
    MemoryRateLimiter,
    MemoryReplicaRegistry,
    MemoryResponseCache,
    MemoryRoutingStore,
    MemorySessionDirectory,
)

_log = logging.getLogger("toolmux.state")


def new_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


@dataclass
class State:
    """Every store a replica uses, embedded or shared, behind the interfaces of `interfaces.py`."""

    config: StateConfig
    replica_id: str
    limiter: RateLimiter
    breakers: BreakerStore
    gate: GateStore
    cache: ResponseCacheStore
    routing: RoutingStore
    ledger: UsageLedger
    keys: KeyStore
    pubsub: PubSub
    registry: ReplicaRegistry
    sessions: SessionDirectory
    started_at: float = field(default_factory=time.time)
    url: str = ""  # where the other replicas reach this one (reported with each heartbeat)
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list, repr=False)
    _checks: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict, repr=False)

    @property
    def shared_fast(self) -> bool:
        """Limits, circuits, cache and routing data are shared (Redis)."""
        return self.config.redis is not None

    @property
    def shared_durable(self) -> bool:
        """Usage, spend and keys are shared (PostgreSQL)."""
        return self.config.postgres is not None

    async def heartbeat(self, version: str, load: float) -> None:
        info = ReplicaInfo(self.replica_id, version, load, self.started_at, time.time(), self.url)
        await self.registry.heartbeat(info, ttl=self.config.heartbeat * 3)

    async def run_heartbeat(self, version: str, load: Callable[[], float]) -> None:
        """Report this replica to the registry every `heartbeat` seconds, until cancelled."""
        while True:
            try:
                await self.heartbeat(version, load())
            except StateUnavailable as exc:
                _log.warning("replica heartbeat failed: %s", exc)
            await anyio.sleep(self.config.heartbeat)

    async def health(self) -> dict[str, Any]:
        """Each shared store's reachability (for /health); embedded stores are always up."""
        stores: dict[str, Any] = {}
        for name, check in self._checks.items():
            try:
                with anyio.fail_after(2):
                    await check()
                stores[name] = {"healthy": True}
            except (StateUnavailable, TimeoutError, OSError) as exc:
                stores[name] = {"healthy": False, "reason": str(exc)}
        fleet: list[dict[str, Any]] = []
        with contextlib.suppress(StateUnavailable):
            fleet = [vars(r) for r in await self.registry.fleet()]
        return {
            "mode": "embedded" if self.config.embedded else "shared",
            "replica": self.replica_id,
            "stores": stores,
            "fleet": fleet,
        }

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(StateUnavailable):
                await self.registry.leave(self.replica_id)
            for close in reversed(self._closers):
                try:
                    await close()
                except Exception:  # closing must go on for the other stores
                    _log.exception("closing a state store failed")


async def open_state(
    config: StateConfig | None = None,
    *,
    data_dir: Path,
    replica_id: str | None = None,
    migrate: bool = True,
) -> State:
    """Open (and migrate) every store the config names. Raises `StateUnavailable` when one is down."""
    config = config or StateConfig()
    replica = replica_id or new_replica_id()
    closers: list[Callable[[], Awaitable[Any]]] = []
    checks: dict[str, Callable[[], Awaitable[Any]]] = {}
    try:
        durable: Any
        if config.postgres is not None:
            from aggregator.state.postgres_store import PostgresStore

            durable = PostgresStore(config.postgres, schema=config.schema_name, pool_size=config.pool_size)
            closers.append(durable.aclose)
            await durable.open()
            if migrate:
                applied = await durable.migrate()
                if applied:
                    _log.info("postgres schema %s: applied migrations %s", config.schema_name, applied)
            checks["postgres"] = durable.versions
        else:
            from aggregator.state.sqlite_store import SqliteStore

            durable = await anyio.to_thread.run_sync(SqliteStore, data_dir / "state.sqlite3")
            closers.append(durable.aclose)

        fast: dict[str, Any]
        if config.redis is not None:
            from aggregator.state import redis_store as rs

            client = rs.connect(config.redis)
            closers.append(client.aclose)
            with rs.guard():
                await client.ping()
            checks["redis"] = client.ping
            fast = {
                "limiter": rs.RedisRateLimiter(client, config.prefix),
                "breakers": rs.RedisBreakerStore(client, config.prefix),
                "gate": rs.RedisGate(client, config.prefix),
                "cache": rs.RedisResponseCache(client, config.prefix),
                "routing": rs.RedisRoutingStore(client, config.prefix, replica),
                "pubsub": rs.RedisPubSub(client, config.prefix),
                "registry": rs.RedisReplicaRegistry(client, config.prefix),
                "sessions": rs.RedisSessionDirectory(client, config.prefix),
            }
        else:
            limiter, breakers = MemoryRateLimiter(), MemoryBreakerStore()
            fast = {
                "limiter": limiter,
                "breakers": breakers,
                "gate": MemoryGate(limiter, breakers),
                "cache": MemoryResponseCache(),
                "routing": MemoryRoutingStore(),
                "pubsub": MemoryPubSub(),
                "registry": MemoryReplicaRegistry(),
                "sessions": MemorySessionDirectory(),
            }
    except BaseException:
        with anyio.CancelScope(shield=True):
            for close in reversed(closers):
                with contextlib.suppress(Exception):
                    await close()
        raise
    return State(
        config=config, replica_id=replica, ledger=durable, keys=durable, _closers=closers, _checks=checks, **fast
    )


async def upgrade(config: StateConfig, *, data_dir: Path) -> tuple[str, list[int], list[int]]:
    """Apply pending migrations (`toolmux db upgrade`): which store, versions applied now, all versions."""
    if config.postgres is not None:
        from aggregator.state.postgres_store import PostgresStore

        store = PostgresStore(config.postgres, schema=config.schema_name, pool_size=1)
        try:
            await store.open()
            applied = await store.migrate()
            return f"postgres (schema {config.schema_name})", applied, await store.versions()
        finally:
            await store.aclose()
    from aggregator.state.sqlite_store import SqliteStore

    path = data_dir / "state.sqlite3"
    sqlite = await anyio.to_thread.run_sync(SqliteStore, path)
    try:
        return f"sqlite ({path})", sqlite.applied, sqlite.versions()
    finally:
        await sqlite.aclose()
