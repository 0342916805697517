"""The background TTL sweeper: sleeps until the next expiry (or the interval), deletes what is due.

A write that sets an earlier expiry than the one the sweeper sleeps towards wakes it to re-plan
(`expiry_set`). Reads never depend on the sweeper: an expired object is hidden from every face
the moment its TTL passes, and the sweeper only reclaims its disk space. The sweeper is handed
the work as plain callables, so it imports nothing of the service that owns it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence

import anyio

_log = logging.getLogger("toolmux.storage")

Sweep = Callable[[], Awaitable[int]]


class Sweeper:
    """Runs at most one sweep loop per service, however many lifespans start one."""

    def __init__(
        self,
        sweeps: Sequence[Sweep],
        *,
        next_expiry: Callable[[], Awaitable[float | None]],
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._work = list(sweeps)  # the first one's count is what `sweep_once` reports
        self._next_expiry = next_expiry
        self.interval = interval
        self.clock = clock
        self.sweeps = 0
        self.next_sweep_at: float | None = None
        self._expiry_changed = anyio.Event()
        self._active = False
        self._released = anyio.Event()
        self._swept = anyio.Event()

    def expiry_set(self, expires_at: float) -> None:
        """A write armed a TTL: wake the loop when it is due before the planned sweep."""
        if self.next_sweep_at is None or expires_at < self.next_sweep_at:
            self._expiry_changed.set()

    async def sweep_once(self) -> int:
        counts = [await sweep() for sweep in self._work]
        self.sweeps += 1
        self._swept.set()
        self._swept = anyio.Event()
        return counts[0] if counts else 0

    async def wait_for_sweep(self) -> None:
        """Return after the next sweep finishes (for tests and diagnostics)."""
        await self._swept.wait()

    async def _delay(self) -> float:
        next_expiry = await self._next_expiry()
        if next_expiry is None:
            return self.interval
        return min(self.interval, max(0.0, next_expiry - self.clock()))

    async def run(self) -> None:
        while self._active:
            await self._released.wait()
        self._active = True
        try:
            while True:
                try:
                    removed = await self.sweep_once()
                    if removed:
                        _log.info("storage: %d expired object(s) removed", removed)
                    delay = await self._delay()
                except Exception:
                    # A failing sweep (disk full, busy key) must not end expiry for good.
                    _log.exception("storage: TTL sweep failed; retrying later")
                    delay = self.interval
                self.next_sweep_at = self.clock() + delay
                changed = self._expiry_changed
                with anyio.move_on_after(delay if math.isfinite(delay) else None):
                    await changed.wait()
                if changed.is_set():
                    self._expiry_changed = anyio.Event()
        finally:
            self._active = False
            self.next_sweep_at = None
            self._released.set()
            self._released = anyio.Event()
