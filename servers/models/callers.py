"""What a caller's own key allows on the models server: which aliases, how fast, how much.

The hub hands the models server a `LimitsOf` (through `ServerSettings.key_limits`): the limits of
the key a call comes in on, or None when the key carries none (YAML keys; their budgets are the
models config's `budgets:`). Checked on every chat and embed call, whichever face it came through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Protocol

from aggregator.state.interfaces import RateLimiter, StateUnavailable
from servers.kit import ToolError
from servers.models.config import BudgetConfig
from servers.models.usage import UsageStore

_log = logging.getLogger("toolmux.models")


class CallerLimits(Protocol):
    @property
    def rpm(self) -> int | None: ...

    @property
    def tpm(self) -> int | None: ...

    @property
    def budget(self) -> float | None: ...

    @property
    def budget_period(self) -> Literal["day", "month", "total"]: ...

    def may_use_model(self, alias: str) -> bool: ...


LimitsOf = Callable[[str], CallerLimits | None]


class CallerGate:
    """Admits a caller's call (model allow-list, then rpm/tpm) and counts the tokens it spent."""

    def __init__(self, limits_of: LimitsOf | None, usage: UsageStore, limiter: RateLimiter) -> None:
        self.limits_of = limits_of
        self.usage = usage
        self.limiter = limiter

    async def admit(self, key: str, alias: str) -> CallerLimits | None:
        limits = self.limits_of(key) if self.limits_of is not None else None
        if limits is None:
            return None
        if not limits.may_use_model(alias):
            raise ToolError(f"key {key!r} may not use model {alias!r}", code="forbidden", field="model")
        if limits.budget is not None:
            await self.usage.adopt_budget(key, BudgetConfig(max_cost=limits.budget, period=limits.budget_period))
        if limits.rpm is not None or limits.tpm is not None:
            try:
                refusal = await self.limiter.acquire(f"key:{key}", rpm=limits.rpm, tpm=limits.tpm)
            except StateUnavailable as exc:
                _log.warning("key %s: the shared rate limiter did not answer (%s); call let through", key, exc)
                return limits
            if refusal is not None:
                raise ToolError(
                    f"key {key!r} reached its limit of {refusal.cap} {refusal.limit}",
                    code="rate_limited",
                    retry_after=refusal.retry_after,
                    data={"limit": refusal.limit, "cap": refusal.cap},
                )
        return limits

    async def spent(self, key: str, limits: CallerLimits | None, tokens: int) -> None:
        if limits is None or limits.tpm is None or tokens <= 0:
            return
        try:
            await self.limiter.add_tokens(f"key:{key}", tokens)
        except StateUnavailable as exc:
            _log.warning("key %s: %d tokens not counted (%s)", key, tokens, exc)
