"""Per-deployment circuit breaker: closed -> (N failures in a window) open -> (cooldown) half-open.

Half-open lets exactly one probe request through; its success closes the circuit, its failure
opens it again for another cooldown. The clock is injected so tests need no sleeping.

The sync methods keep the state in this process (the embedded default). After `share()`, the
async ones (`acquire`, `succeeded`, `failed`, `released`) keep it in a shared `BreakerStore`
(Redis) so every replica sees the same circuit; if that store does not answer they fall back to
this process's own view (the circuit then becomes per-replica until the store is back).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import anyio

from aggregator.state.degrade import warn_degraded
from aggregator.state.interfaces import BreakerSettings, BreakerStatus, BreakerStore, StateUnavailable
from servers.models.config import CircuitBreakerConfig

State = Literal["closed", "open", "half-open"]
_log = logging.getLogger("toolmux.models")


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.last_error: str | None = None
        self._shared: BreakerStore | None = None
        self._key = ""
        self.settings = BreakerSettings(config.failure_threshold, config.window, config.cooldown)
        self._seen: BreakerStatus | None = None  # the shared circuit as last seen (for health reports)

    def share(self, store: BreakerStore, key: str) -> None:
        """Keep this circuit in a store shared by every replica from now on."""
        self._shared, self._key = store, key

    @property
    def state(self) -> State:
        """The circuit as reported: the shared one as last seen, else this process's."""
        if self._shared is not None and self._seen is not None:
            return self._seen.state
        return self._local_state()

    def _local_state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.config.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go to this deployment now? (Claims the half-open probe slot.)"""
        if not self.config.enabled:
            return True
        state = self._local_state()
        if state == "closed":
            return True
        if state == "half-open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through."""
        if self._shared is not None and self._seen is not None:
            return self._seen.retry_in
        if self._opened_at is None:
            return 0.0
        return max(self.config.cooldown - (self.clock() - self._opened_at), 0.0)

    def record_success(self) -> None:
        self._failures.clear()
        self._opened_at = None
        self._probe_in_flight = False
        self.last_error = None

    def record_failure(self, reason: str) -> None:
        now = self.clock()
        self.last_error = reason
        if self._opened_at is not None:
            # A failed half-open probe (or a late failure while open): a fresh cooldown.
            self._opened_at = now
            self._probe_in_flight = False
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.config.window:
            self._failures.popleft()
        if len(self._failures) >= self.config.failure_threshold:
            self._opened_at = now
            self._failures.clear()

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (cancelled, or a caller error)."""
        self._probe_in_flight = False

    # --- shared across replicas (the sync methods above when not shared) ----------------------------
    def _degraded(self, exc: StateUnavailable) -> None:
        warn_degraded(
            _log,
            f"circuit:{self._key}",
            "circuit %s: shared state unavailable (%s); this replica's own view",
            self._key,
            exc.reason,
        )
        self._seen = None

    def observe_shared(self, status: BreakerStatus | None) -> None:
        """The shared circuit as an admission just saw it (the probe, if any, is claimed there);
        None when the store did not answer (reports then show this process's view)."""
        self._seen = status
        if status is not None and status.last_error:
            self.last_error = status.last_error

    async def acquire(self) -> bool:
        """`allow()`, across replicas."""
        if self._shared is None or not self.config.enabled:
            return self.allow()
        try:
            status = await self._shared.allow(self._key, self.settings)
        except StateUnavailable as exc:
            self._degraded(exc)
            return self.allow()
        self._seen = status
        if status.last_error:
            self.last_error = status.last_error
        return status.state == "closed"

    async def succeeded(self) -> None:
        self.record_success()
        # Nothing to clear when the shared circuit was closed with no failures counted at `acquire`.
        if self._shared is not None and (self._seen is None or self._seen != BreakerStatus("closed")):
            try:
                await self._shared.record_success(self._key)
                self._seen = BreakerStatus("closed")
            except StateUnavailable as exc:
                self._degraded(exc)

    async def failed(self, reason: str) -> None:
        self.record_failure(reason)
        if self._shared is not None:
            try:
                self._seen = await self._shared.record_failure(self._key, reason, self.settings)
            except StateUnavailable as exc:
                self._degraded(exc)

    async def released(self) -> None:
        """Runs while a call is being cancelled: the shared release is shielded so the probe is not lost."""
        self.release_probe()
        if self._shared is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await self._shared.release_probe(self._key)
                except StateUnavailable as exc:
                    self._degraded(exc)
