"""Per-object read/write locks that hold across hub replicas: PostgreSQL advisory locks.

Same interface as `KeyLocks` (`read(key)` / `write(key)`), used when the storage metadata is in
PostgreSQL. A caller first takes this process's own lock on the object (which keeps the bounded
queue, the writer preference and the `busy` answers of `KeyLocks`), then a session-level advisory
lock on one pooled connection, shared for readers and exclusive for writers, keyed by a 64-bit
hash of (bucket, key). PostgreSQL releases an advisory lock when its connection ends, so a
replica that dies while holding one (kill -9, a lost network) cannot leave an object locked: its
connection goes, and with it the lock. A wait longer than the storage lock timeout is `busy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
from psycopg_pool import ConnectionPool

from servers.kit import ToolError
from servers.storage.locks import KeyLocks


def lock_id(key: Hashable) -> int:
    """A signed 64-bit advisory lock id for an object (a collision only makes two objects share a lock)."""
    text = "\x1f".join(key) if isinstance(key, tuple) else str(key)
    digest = hashlib.blake2b(f"toolmux-storage\x1f{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SharedKeyLocks:
    def __init__(self, local: KeyLocks, pool: ConnectionPool) -> None:
        self.local = local
        self.pool = pool
        self.timeout = local.timeout

    def state(self, key: Hashable) -> dict[str, int | bool]:
        return self.local.state(key)

    def _acquire(self, key: Hashable, exclusive: bool) -> psycopg.Connection[Any]:
        conn = self.pool.getconn()
        try:
            conn.execute(f"SET lock_timeout = '{int(self.timeout * 1000)}ms'")
            function = "pg_advisory_lock" if exclusive else "pg_advisory_lock_shared"
            conn.execute(f"SELECT {function}(%s)", (lock_id(key),))
        except psycopg.errors.LockNotAvailable:
            self.pool.putconn(conn)
            name = "/".join(key) if isinstance(key, tuple) else str(key)
            raise ToolError(
                f"object {name!r} is busy (held by another replica for more than {self.timeout:g}s); retry shortly",
                code="busy",
                retryable=True,
                retry_after=self.local.retry_after,
            ) from None
        except BaseException:
            self.pool.putconn(conn)
            raise
        return conn

    def _release(self, conn: psycopg.Connection[Any], key: Hashable, exclusive: bool) -> None:
        try:
            function = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
            conn.execute(f"SELECT {function}(%s)", (lock_id(key),))
        finally:
            self.pool.putconn(conn)

    @asynccontextmanager
    async def _hold(self, key: Hashable, exclusive: bool) -> AsyncIterator[None]:
        try:
            conn = await anyio.to_thread.run_sync(self._acquire, key, exclusive)
        except psycopg.OperationalError as exc:
            raise ToolError(f"object locks are unavailable: {exc}", code="unavailable", retryable=True) from None
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._release, conn, key, exclusive)

    @asynccontextmanager
    async def read(self, key: Hashable) -> AsyncIterator[None]:
        async with self.local.read(key), self._hold(key, exclusive=False):
            yield

    @asynccontextmanager
    async def write(self, key: Hashable) -> AsyncIterator[None]:
        async with self.local.write(key), self._hold(key, exclusive=True):
            yield
