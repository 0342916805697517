"""Per-object async read/write locks: many readers or one writer, a bounded queue, a deadline.

    locks = KeyLocks(timeout=10, max_waiters=64)
    async with locks.read(("default", "a.txt")):
        ...

A caller that would be waiter number `max_waiters + 1`, or that waits past `timeout`, gets
`ToolError(code="busy", retryable=True, retry_after=...)` instead of queueing forever. Waiting
writers hold back new readers, so a steady stream of readers cannot starve a writer. Entries
exist only while someone holds or waits on a key, so memory follows concurrency, not key count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from servers.kit import ToolError


class ObjectLocks(Protocol):
    """What the service needs of per-object locks: `KeyLocks` in one process, `SharedKeyLocks` across replicas."""

    def read(self, key: Hashable) -> AbstractAsyncContextManager[None]: ...

    def write(self, key: Hashable) -> AbstractAsyncContextManager[None]: ...

    def state(self, key: Hashable) -> dict[str, int | bool]: ...


@dataclass
class _Entry:
    readers: int = 0
    writer: bool = False
    waiting_writers: int = 0
    waiters: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def idle(self) -> bool:
        return not self.readers and not self.writer and not self.waiters


class KeyLocks:
    def __init__(self, *, timeout: float = 10.0, max_waiters: int = 64, retry_after: float = 1.0) -> None:
        self.timeout = timeout
        self.max_waiters = max_waiters
        self.retry_after = retry_after
        self._entries: dict[Hashable, _Entry] = {}

    def state(self, key: Hashable) -> dict[str, int | bool]:
        """Readers, writer and waiters on `key` right now (for tests and diagnostics)."""
        entry = self._entries.get(key) or _Entry()
        return {"readers": entry.readers, "writer": entry.writer, "waiters": entry.waiters}

    def _busy(self, key: Hashable, why: str) -> ToolError:
        name = "/".join(key) if isinstance(key, tuple) else str(key)
        return ToolError(
            f"object {name!r} is busy ({why}); retry shortly",
            code="busy",
            retryable=True,
            retry_after=self.retry_after,
        )

    async def _wait(self, key: Hashable, entry: _Entry, blocked: str, *, writer: bool) -> None:
        if entry.waiters >= self.max_waiters:
            raise self._busy(key, f"{entry.waiters} callers already waiting")
        entry.waiters += 1
        if writer:
            entry.waiting_writers += 1
        try:
            with anyio.move_on_after(self.timeout) as scope:
                while self._blocked(entry, writer=writer):
                    await entry.changed.wait()
            if scope.cancelled_caught:
                raise self._busy(key, f"{blocked} for more than {self.timeout:g}s")
        finally:
            entry.waiters -= 1
            if writer:
                entry.waiting_writers -= 1
            # A writer that gave up may unblock readers it was holding back.
            entry.notify()

    @staticmethod
    def _blocked(entry: _Entry, *, writer: bool) -> bool:
        if writer:
            return entry.writer or entry.readers > 0
        return entry.writer or entry.waiting_writers > 0

    def _release(self, key: Hashable, entry: _Entry) -> None:
        entry.notify()
        if entry.idle and self._entries.get(key) is entry:
            del self._entries[key]

    @asynccontextmanager
    async def read(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._entries.setdefault(key, _Entry())
        try:
            if self._blocked(entry, writer=False):
                await self._wait(key, entry, "being written", writer=False)
        except BaseException:
            self._release(key, entry)
            raise
        entry.readers += 1
        try:
            yield
        finally:
            entry.readers -= 1
            self._release(key, entry)

    @asynccontextmanager
    async def write(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._entries.setdefault(key, _Entry())
        try:
            if self._blocked(entry, writer=True):
                await self._wait(key, entry, "in use", writer=True)
        except BaseException:
            self._release(key, entry)
            raise
        entry.writer = True
        try:
            yield
        finally:
            entry.writer = False
            self._release(key, entry)
