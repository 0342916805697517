"""The background TTL sweeper: sleeps until the next expiry (or the interval), deletes what is due.

A write that sets an earlier expiry than the one the sweeper sleeps towards wakes it to re-plan
(`service.expiry_changed`). Reads never depend on the sweeper: an expired object is hidden from
every face the moment its TTL passes, and the sweeper only reclaims its disk space.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from servers.storage.service import StorageService

_log = logging.getLogger("toolmux.storage")


class Sweeper:
    """Runs at most one sweep loop per service, however many lifespans start one."""

    def __init__(self, service: StorageService) -> None:
        self.service = service
        self.sweeps = 0
        self._active = False
        self._released = anyio.Event()
        self._swept = anyio.Event()

    async def sweep_once(self) -> int:
        removed = await self.service.sweep_expired()
        await self.service.multipart.sweep_stale()
        self.sweeps += 1
        self._swept.set()
        self._swept = anyio.Event()
        return removed

    async def wait_for_sweep(self) -> None:
        """Return after the next sweep finishes (for tests and diagnostics)."""
        await self._swept.wait()

    async def _delay(self) -> float:
        interval = self.service.config.sweep_interval_seconds
        next_expiry = await self.service.meta.next_expiry()
        if next_expiry is None:
            return interval
        return min(interval, max(0.0, next_expiry - self.service.clock()))

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
                    delay = self.service.config.sweep_interval_seconds
                self.service.next_sweep_at = self.service.clock() + delay
                changed = self.service.expiry_changed
                with anyio.move_on_after(delay if math.isfinite(delay) else None):
                    await changed.wait()
                if changed.is_set():
                    self.service.expiry_changed = anyio.Event()
        finally:
            self._active = False
            self.service.next_sweep_at = None
            self._released.set()
            self._released = anyio.Event()
