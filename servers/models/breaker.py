"""Per-deployment circuit breaker: closed -> (N failures in a window) open -> (cooldown) half-open.

Half-open lets exactly one probe request through; its success closes the circuit, its failure
opens it again for another cooldown. The clock is injected so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from servers.models.config import CircuitBreakerConfig

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.last_error: str | None = None

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.config.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go to this deployment now? (Claims the half-open probe slot.)"""
        if not self.config.enabled:
            return True
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through."""
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
